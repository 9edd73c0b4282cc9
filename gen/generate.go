// Package gen holds the Go types generated from the JSON Schemas in schemas/:
// gen/protocol (the Airbyte protocol messages) and gen/config (the connector's
// config). Nothing under gen/ is edited by hand: change the schema, then run
// `make generate` (go generate ./gen), which this file drives with the
// generator version pinned in go.mod.
package gen

//go:generate go run ../tools/genprotocol -schema ../schemas/airbyte_protocol.schema.json -overlay ../schemas/protocol.overlay.json -o protocol/protocol.go
//go:generate go tool go-jsonschema --package config --tags json --capitalization ID,URL,API,JSON --schema-root-type https://destination-keen.local/schemas/config.schema.json=Config --output config/config.go ../schemas/config.schema.json
