# syntax=docker/dockerfile:1
# destination-keen for those who build with Docker: the static Go binary on a
# distroless base (CA certificates, the non-root user 65532, no shell).
# `make image` builds the same image without Docker (tools/image); a test
# keeps the two in step: entrypoint, working folder, labels, env and user.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/destination-keen ./cmd/destination-keen

FROM gcr.io/distroless/static-debian12:nonroot
LABEL io.airbyte.name=airbyte/destination-keen
LABEL io.airbyte.version=0.7.0
LABEL org.opencontainers.image.title=destination-keen
LABEL org.opencontainers.image.version=0.7.0
WORKDIR /airbyte
COPY --from=build /out/destination-keen /airbyte/destination-keen
USER 65532:65532
ENV AIRBYTE_ENTRYPOINT=/airbyte/destination-keen
ENTRYPOINT ["/airbyte/destination-keen"]
