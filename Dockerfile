# syntax=docker/dockerfile:1
# destination-keen: a static Go binary on a distroless base (CA certificates,
# a non-root user, no shell). Build with `make image`.

FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/destination-keen ./cmd/destination-keen

FROM gcr.io/distroless/static-debian12:nonroot
LABEL io.airbyte.name=airbyte/destination-keen
LABEL io.airbyte.version=0.5.0
WORKDIR /airbyte
COPY --from=build /out/destination-keen /airbyte/destination-keen
USER nonroot:nonroot
ENV AIRBYTE_ENTRYPOINT="/airbyte/destination-keen"
ENTRYPOINT ["/airbyte/destination-keen"]
