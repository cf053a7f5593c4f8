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

// func nearQuantizedSSE(c, q *int16, stride int, d *float32, cand *int32, sum *int32, n int, a, b float32, rows int) int
// is nearQuantizedGo over cand[:n] and sum[:n] (quantBlock 16), or −1 when
// a member is not below rows.
TEXT ·nearQuantizedSSE(SB), NOSPLIT, $0-80
	MOVQ  c+0(FP), SI
	MOVQ  q+8(FP), DI
	MOVQ  stride+16(FP), R8
	SHLQ  $1, R8        // row stride in bytes
	MOVQ  d+24(FP), R9
	MOVQ  cand+32(FP), BX
	MOVQ  BX, R10       // where the next kept member goes
	MOVQ  sum+40(FP), R12
	MOVQ  R12, R13      // where the next kept sum goes
	MOVQ  n+48(FP), CX
	MOVSS a+56(FP), X6
	MOVSS b+60(FP), X7
	MOVOU 0(SI), X8     // the centre's block
	MOVOU 16(SI), X9
	TESTQ CX, CX
	JEQ   nqdone

nqloop:
	MOVLQSX (BX), AX
	CMPQ    AX, rows+64(FP)
	JCC     nqbad       // p ≥ rows, or negative (unsigned)
	MOVSS   (R9)(AX*4), X5
	MULSS   X6, X5
	ADDSS   X7, X5
	MULSS   X5, X5      // t = (d·a + b)²
	MOVQ    AX, R11
	IMULQ   R8, R11
	ADDQ    DI, R11     // the member's block
	MOVL    (R12), DX
	MOVQ    DX, X4      // the sum so far, in lane 0
	MOVO    X8, X0
	MOVOU   0(R11), X1
	PSUBW   X1, X0
	PMADDWL X0, X0
	PADDL   X0, X4
	MOVO    X9, X0
	MOVOU   16(R11), X1
	PSUBW   X1, X0
	PMADDWL X0, X0
	PADDL   X0, X4
	PSHUFL  $0x4E, X4, X0
	PADDL   X4, X0
	PSHUFL  $0xB1, X0, X1
	PADDL   X1, X0
	MOVQ    X0, DX
	CVTSL2SS DX, X2
	UCOMISS X5, X2
	JCC     nqnext      // D ≥ t: ruled out (false for NaN, as in Go)
	MOVL    AX, (R10)   // not ruled out: kept with its sum
	ADDQ    $4, R10
	MOVL    DX, (R13)
	ADDQ    $4, R13

nqnext:
	ADDQ    $4, BX
	ADDQ    $4, R12
	DECQ    CX
	JNZ     nqloop

nqdone:
	SUBQ    cand+32(FP), R10
	SHRQ    $2, R10
	MOVQ    R10, ret+72(FP)
	RET

nqbad:
	MOVQ    $-1, ret+72(FP)
	RET

// func prefetchSSE(addr unsafe.Pointer, lines int)
// prefetches lines cache lines from addr into all cache levels.
TEXT ·prefetchSSE(SB), NOSPLIT, $0-16
	MOVQ addr+0(FP), SI
	MOVQ lines+8(FP), CX

pfloop:
	PREFETCHT0 (SI)
	ADDQ $64, SI
	DECQ CX
	JNZ  pfloop
	RET

// func firstBelowSSE(v *float32, blocks int, bound float32) int
// returns the first block of 16 floats (of blocks at v) holding a value
// below bound, or blocks when none does (NaN is never below).
TEXT ·firstBelowSSE(SB), NOSPLIT, $0-32
	MOVQ  v+0(FP), SI
	MOVQ  blocks+8(FP), CX
	MOVSS bound+16(FP), X7
	SHUFPS $0x00, X7, X7
	XORQ  AX, AX
	TESTQ CX, CX
	JEQ   fbdone

fbloop:
	MOVUPS 0(SI), X0
	MOVUPS 16(SI), X1
	MOVUPS 32(SI), X2
	MOVUPS 48(SI), X3
	CMPPS  X7, X0, 1    // v < bound
	CMPPS  X7, X1, 1
	CMPPS  X7, X2, 1
	CMPPS  X7, X3, 1
	ORPS   X1, X0
	ORPS   X3, X2
	ORPS   X2, X0
	MOVMSKPS X0, DX
	TESTL  DX, DX
	JNE    fbdone
	ADDQ   $64, SI
	INCQ   AX
	CMPQ   AX, CX
	JLT    fbloop

fbdone:
	MOVQ AX, ret+24(FP)
	RET
