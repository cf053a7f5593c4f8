# syntax=docker/dockerfile:1
#
# Headless command-line image of the DMAD inspection workstation: the
# `workstation` binary built with -tags nogui (no Fyne, no OpenGL/X11) and
# the ONNX Runtime CPU library. For batch and sharded inspection, e.g. the
# Kubernetes Job in deploy/kubernetes/inspect-job.yaml.
#
#   docker build -t dmad-workstation:latest .
#   docker run --rm -v $PWD/project.db:/project/project.db:ro -v $PWD/images:/images:ro \
#     -v $HOME/.local/share/dmad-workstation/backbones:/var/lib/dmad/dmad-workstation/backbones:ro \
#     -v $PWD/out:/out dmad-workstation:latest inspect --project /project/project.db --input /images --out /out
#
# The backbone store (see `workstation backbone list`) is mounted, not baked
# in: images stay small and backbones keep their own licences.

ARG GO_VERSION=1.26

# ONNX Runtime from the same npm package and checksum as scripts/setup.sh.
FROM node:22-bookworm-slim AS ort
ARG ORT_VERSION=1.30.0
ARG ORT_SHA256=6e3390d6b783e7be946fad629292799da28d0b42f84856e50d2c1b0383291e75
WORKDIR /tmp/ort
RUN npm pack --silent "onnxruntime-node@${ORT_VERSION}" \
 && echo "${ORT_SHA256}  onnxruntime-node-${ORT_VERSION}.tgz" | sha256sum -c - \
 && tar -xzf "onnxruntime-node-${ORT_VERSION}.tgz" package/bin/napi-v6/linux/x64/libonnxruntime.so.1 \
 && mv package/bin/napi-v6/linux/x64/libonnxruntime.so.1 /tmp/libonnxruntime.so.1

# cgo stays on: onnxruntime_go loads the library through cgo. The nogui tag
# leaves out the GUI, so no OpenGL or X11 headers are needed.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=1 go build -tags nogui -trimpath -o /out/workstation ./cmd/workstation

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libstdc++6 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --no-create-home --home-dir /nonexistent dmad
COPY --from=ort /tmp/libonnxruntime.so.1 /opt/onnxruntime/libonnxruntime.so.1
COPY --from=build /out/workstation /usr/local/bin/workstation
# Backbones are looked up in $XDG_DATA_HOME/dmad-workstation/backbones;
# settings go to a writable temporary folder.
ENV ONNXRUNTIME_LIB=/opt/onnxruntime/libonnxruntime.so.1 \
    XDG_DATA_HOME=/var/lib/dmad \
    XDG_CONFIG_HOME=/tmp/dmad-config
USER 10001
ENTRYPOINT ["workstation"]
CMD ["help"]
