//go:build !purego

#include "textflag.h"

// The kernels in SSE (the amd64 baseline). Each rounds exactly as its Go
// version in kernels.go: the same multiplications and additions in the
// same order, never fused. Only legacy SSE encodings: no VEX instruction
// leaves the vector registers' upper halves dirty for Go's scalar code.

// REDUCE sets lane 0 of X0 = [s0, s1, s2, s3] to (s0+s1)+(s2+s3); X1 is
// clobbered.
#define REDUCE \
	MOVAPS  X0, X1      \
	SHUFPS  $0xB1, X1, X1 \
	ADDPS   X1, X0      \
	MOVHLPS X0, X1      \
	ADDSS   X1, X0

// LOAD16(a) loads the 16 floats at a into X8–X11.
#define LOAD16(a) \
	MOVUPS 0(a), X8   \
	MOVUPS 16(a), X9  \
	MOVUPS 32(a), X10 \
	MOVUPS 48(a), X11

// SQUARES16(b) sets X0 to the four partial sums of block16Go of the 16
// floats in X8–X11 (see LOAD16) and the 16 at b: lane j =
// (((dj² + dj+4²) + dj+8²) + dj+12²), d = a−b. X1 and X4 are clobbered.
#define SQUARES16(b) \
	MOVUPS 0(b), X4  \
	MOVAPS X8, X0    \
	SUBPS  X4, X0    \
	MULPS  X0, X0    \
	MOVUPS 16(b), X4 \
	MOVAPS X9, X1    \
	SUBPS  X4, X1    \
	MULPS  X1, X1    \
	ADDPS  X1, X0    \
	MOVUPS 32(b), X4 \
	MOVAPS X10, X1   \
	SUBPS  X4, X1    \
	MULPS  X1, X1    \
	ADDPS  X1, X0    \
	MOVUPS 48(b), X4 \
	MOVAPS X11, X1   \
	SUBPS  X4, X1    \
	MULPS  X1, X1    \
	ADDPS  X1, X0

// func firstBlocksSSE(c, pre *float32, cand *int32, n int, s *float32)
// sets s[i] = block16Go(c, pre[cand[i]·16:]) for i < n.
TEXT ·firstBlocksSSE(SB), NOSPLIT, $0-40
	MOVQ  c+0(FP), SI
	MOVQ  pre+8(FP), DI
	MOVQ  cand+16(FP), BX
	MOVQ  n+24(FP), CX
	MOVQ  s+32(FP), DX
	LOAD16(SI)
	TESTQ CX, CX
	JEQ   fbdone

fbloop:
	MOVLQSX (BX), AX
	SHLQ    $6, AX      // 16 floats of 4 bytes per member
	ADDQ    DI, AX
	SQUARES16(AX)
	REDUCE
	MOVSS   X0, (DX)
	ADDQ    $4, BX
	ADDQ    $4, DX
	DECQ    CX
	JNZ     fbloop

fbdone:
	RET

// func axpySSE(y, x *float32, a float32, blocks int)
// adds a·x to y over blocks·4 floats.
TEXT ·axpySSE(SB), NOSPLIT, $0-32
	MOVQ   y+0(FP), DI
	MOVQ   x+8(FP), SI
	MOVSS  a+16(FP), X0
	SHUFPS $0, X0, X0
	MOVQ   blocks+24(FP), CX
	TESTQ  CX, CX
	JEQ    axdone

axloop:
	MOVUPS (SI), X1
	MULPS  X0, X1
	MOVUPS (DI), X2
	ADDPS  X1, X2
	MOVUPS X2, (DI)
	ADDQ   $16, SI
	ADDQ   $16, DI
	DECQ   CX
	JNZ    axloop

axdone:
	RET

// func sqDistBlocksSSE(a, b *float32, blocks int, s, bound float32) float32
// adds block16Go(a, b) of each of blocks consecutive 16-float blocks to s in
// order and returns s once it reaches bound (or after the last block).
TEXT ·sqDistBlocksSSE(SB), NOSPLIT, $0-36
	MOVQ  a+0(FP), SI
	MOVQ  b+8(FP), DI
	MOVQ  blocks+16(FP), CX
	MOVSS s+24(FP), X5
	MOVSS bound+28(FP), X6
	TESTQ CX, CX
	JEQ   sddone

sdloop:
	LOAD16(SI)
	SQUARES16(DI)
	REDUCE
	ADDSS   X0, X5
	UCOMISS X6, X5
	JCC     sddone      // s ≥ bound (false for NaN, as in Go)
	ADDQ    $64, SI
	ADDQ    $64, DI
	DECQ    CX
	JNZ     sdloop

sddone:
	MOVSS X5, ret+32(FP)
	RET
