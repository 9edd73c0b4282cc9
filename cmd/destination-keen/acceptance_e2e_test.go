package main

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"destination-keen/tools/keenlocal/emulator"
)

// The acceptance suite: what Airbyte asks of every destination, in the
// cases of its own suites — the Java CDK's DestinationAcceptanceTest (DAT)
// and the Bulk CDK's BasicFunctionalityIntegrationTest (BFIT) — each test
// naming the one it follows, with data written here. Every sync is checked
// as those suites check it: exit 0, the last state echoed equal to the last
// state in (destinationStats aside), and the records read back from Keen as
// its extraction serves them equal to the records' data in, in any order
// (the keen object and the _airbyte_* properties aside, as the suites set
// their own metadata columns aside).
//
// Where Keen differs from a warehouse, the case says so: namespaces are not
// part of collection names (the Java connector's rule), an array holding
// objects is kept as a string of its JSON text (Keen drops such events
// otherwise), and a stream name becomes a collection name by Keen's rules.
// Deduplication (append_dedup) does not apply: Keen cannot update or delete
// single events, and the catalog refuses it.

// exchangeRate is a stream as Airbyte's acceptance catalogs declare one: a
// name and a schema, nothing more.
func exchangeRate(mode string, gen, minGen, syncID int) cstream {
	return cstream{name: "exchange_rate", mode: mode, gen: gen, minGen: minGen, syncID: syncID, syncMode: "full_refresh", bare: true,
		schema: `{"type":"object","properties":{"id":{"type":"integer"},"currency":{"type":"string"},"date":{"type":"string","format":"date-time"},"HKD":{"type":"number"},"NZD":{"type":"number"},"USD":{"type":"number"}}}`}
}

// exchangeRates are five records, two of them versions of one row (same id
// and date, other rates), and two states, then the COMPLETE the platform
// sends once the source succeeded.
func exchangeRates(stream string) []string {
	return []string{
		rec(stream, `{"id":1,"currency":"USD","date":"2020-08-29T00:00:00Z","NZD":1.14,"HKD":2.13}`, 1602637589000),
		rec(stream, `{"id":2,"currency":"EUR","date":"2020-08-31T00:00:00Z","NZD":3.89,"HKD":7.15,"USD":10.16}`, 1602637589100),
		`{"type":"STATE","state":{"data":{"start_date":"2020-08-31"}}}`,
		rec(stream, `{"id":2,"currency":"EUR","date":"2020-08-31T00:00:00Z","NZD":3.99,"HKD":7.99,"USD":10.99}`, 1602637589200),
		rec(stream, `{"id":3,"currency":"GBP","date":"2020-09-01T00:00:00Z","NZD":1.96,"HKD":10.41,"USD":1.34}`, 1602637589300),
		rec(stream, `{"id":4,"currency":"JPY","date":"2020-09-02T00:00:00Z","NZD":0.014,"HKD":0.073,"USD":0.0094}`, 1602637589400),
		`{"type":"STATE","state":{"data":{"start_date":"2020-09-02"}}}`,
		complete(stream),
	}
}

// canonical is a JSON object re-encoded with sorted keys and its numbers as
// written, so that two documents compare equal when they hold the same
// values.
func canonical(t *testing.T, doc []byte) string {
	t.Helper()
	var v any
	d := json.NewDecoder(strings.NewReader(string(doc)))
	d.UseNumber()
	if err := d.Decode(&v); err != nil {
		t.Fatalf("not JSON (%v): %s", err, doc)
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dataIn is the data of every RECORD of the input, canonical.
func dataIn(t *testing.T, input []string) []string {
	t.Helper()
	var out []string
	for _, l := range input {
		var m struct {
			Type   string `json:"type"`
			Record struct {
				Data json.RawMessage `json:"data"`
			} `json:"record"`
		}
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == "RECORD" {
			out = append(out, canonical(t, m.Record.Data))
		}
	}
	return out
}

// stored is what a collection holds, as Keen's extraction serves it, less
// what the connector and Keen add: the keen object and _airbyte_*
// properties. Canonical.
func (e *env) stored(collection string) []string {
	e.t.Helper()
	var out []string
	for _, ev := range e.events(collection) {
		for k := range ev {
			if k == "keen" || strings.HasPrefix(k, "_airbyte_") {
				delete(ev, k)
			}
		}
		b, err := json.Marshal(ev)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, string(b))
	}
	return out
}

// sameRecords fails unless got holds the records of want, in any order.
func sameRecords(t *testing.T, what string, want, got []string) {
	t.Helper()
	want, got = slices.Sorted(slices.Values(want)), slices.Sorted(slices.Values(got))
	if !slices.Equal(want, got) {
		t.Fatalf("%s: read back\n  %s\nwant\n  %s", what, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// accept runs one sync as Airbyte's suites do and checks what they check of
// every sync: exit 0, and the last state echoed equal to the last state in,
// destinationStats aside.
func (e *env) accept(t *testing.T, streams []cstream, input []string) result {
	t.Helper()
	cat := e.write("catalog.json", catalogDoc(streams...))
	r := e.run(lines(input...), "write", "--config", e.config(nil), "--catalog", cat)
	if r.code != 0 {
		t.Fatalf("exit %d:\n%s", r.code, r.stdout)
	}
	var lastIn string
	for _, l := range input {
		if strings.Contains(l, `"type":"STATE"`) {
			lastIn = l
		}
	}
	if lastIn == "" {
		return r
	}
	var lastOut string
	for l := range strings.Lines(r.stdout) {
		if strings.Contains(l, `"type":"STATE"`) {
			lastOut = l
		}
	}
	if lastOut == "" {
		t.Fatalf("no state echoed:\n%s", r.stdout)
	}
	var out map[string]any
	d := json.NewDecoder(strings.NewReader(lastOut))
	d.UseNumber()
	if err := d.Decode(&out); err != nil {
		t.Fatal(err)
	}
	delete(out["state"].(map[string]any), "destinationStats")
	b, _ := json.Marshal(out)
	if got, want := string(b), canonical(t, []byte(lastIn)); got != want {
		t.Fatalf("last state echoed %s, want %s", got, want)
	}
	return r
}

// generationsOf fails unless every event of collection carries generation.
func (e *env) generationsOf(t *testing.T, collection string, generation int) {
	t.Helper()
	if gens := generations(e.events(collection)); len(gens) != 1 || gens[fmt.Sprint(generation)] == 0 {
		t.Fatalf("%s: generations %v, want every event of generation %d", collection, gens, generation)
	}
}

// DAT testSync, testAirbyteFields: an overwrite sync (generation 12 of
// sync 42, as the DAT configures its catalogs) of a stream declared by name
// and schema only; every record lands, the two versions of one row
// included, each with the catalog's generation.
func TestAcceptanceSync(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		in := exchangeRates("exchange_rate")
		e.accept(t, []cstream{exchangeRate("overwrite", 12, 12, 42)}, in)
		sameRecords(t, "exchange_rate", dataIn(t, in), e.stored("exchange_rate"))
		e.generationsOf(t, "exchange_rate", 12)
		e.noRejections()
	})
}

// DAT testSyncWithLargeRecordBatch: the records and states repeated 400
// times, the COMPLETE at the end. Every record lands (no primary key: no
// token drops a copy) and every state is echoed.
func TestAcceptanceLargeRecordBatch(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		one := exchangeRates("exchange_rate")
		body, trailer := one[:len(one)-1], one[len(one)-1]
		var in []string
		for range 400 {
			in = append(in, body...)
		}
		in = append(in, trailer)
		r := e.accept(t, []cstream{exchangeRate("overwrite", 12, 12, 42)}, in)
		if got := len(r.states()); got != 800 {
			t.Fatalf("%d states echoed, want 800", got)
		}
		if n := len(e.events("exchange_rate")); n != 2000 {
			t.Fatalf("%d events, want 2000", n)
		}
	})
}

// DAT testSecondSync: a second overwrite sync (generation 13) leaves only its
// own record, and a stream of another collection synced in between
// (DummyCatalog, generation 20) is left as it was.
func TestAcceptanceSecondSync(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		first := exchangeRates("exchange_rate")
		e.accept(t, []cstream{exchangeRate("overwrite", 12, 12, 42)}, first)
		dummy := exchangeRate("overwrite", 20, 20, 42)
		dummy.name = "DummyCatalog"
		dummyIn := exchangeRates("DummyCatalog")
		e.accept(t, []cstream{dummy}, dummyIn)

		second := []string{
			rec("exchange_rate", `{"id":1,"currency":"USD","date":"2020-03-31T00:00:00Z","HKD":10.1,"NZD":700.1}`, 1602637600000),
			`{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{"checkpoint":2},"stream_states":[]}}}`,
			complete("exchange_rate"),
		}
		e.accept(t, []cstream{exchangeRate("overwrite", 13, 13, 43)}, second)
		sameRecords(t, "exchange_rate after the second sync", dataIn(t, second), e.stored("exchange_rate"))
		e.generationsOf(t, "exchange_rate", 13)
		sameRecords(t, "DummyCatalog, another stream's collection", dataIn(t, dummyIn), e.stored("DummyCatalog"))
	})
}

// DAT testLineBreakCharacters: U+2028, \n and \r inside values round-trip.
func TestAcceptanceLineBreakCharacters(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		in := []string{
			rec("exchange_rate", `{"id":1,"currency":"USD\u2028","date":"2020-03-\n31T00:00:00Z\r","HKD":10.1,"NZD":700.1}`, 1602637600000),
			`{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{"checkpoint":2},"stream_states":[]}}}`,
			complete("exchange_rate"),
		}
		e.accept(t, []cstream{exchangeRate("overwrite", 12, 12, 42)}, in)
		got := e.stored("exchange_rate")
		sameRecords(t, "exchange_rate", dataIn(t, in), got)
		if !strings.Contains(got[0], `USD\u2028`) || !strings.Contains(got[0], `2020-03-\n31T00:00:00Z\r`) {
			t.Fatalf("line breaks lost: %s", got[0])
		}
	})
}

// DAT testIncrementalSync, BFIT testAppend: a second incremental append
// sync keeps the first one's records (generation 12, minimum 0: no
// truncation).
func TestAcceptanceIncrementalSync(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		first := exchangeRates("exchange_rate")
		e.accept(t, []cstream{exchangeRate("append", 12, 0, 42)}, first)
		second := []string{
			rec("exchange_rate", `{"id":1,"currency":"USD","date":"2020-03-31T00:00:00Z","HKD":10.1,"NZD":700.1}`, 1602637600000),
			`{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{"checkpoint":2},"stream_states":[]}}}`,
			complete("exchange_rate"),
		}
		e.accept(t, []cstream{exchangeRate("append", 12, 0, 43)}, second)
		sameRecords(t, "exchange_rate after two appends", append(dataIn(t, first), dataIn(t, second)...), e.stored("exchange_rate"))
	})
}

// DAT testSyncNotFailsWithNewFields, BFIT testAppendSchemaEvolution: fields
// the stream's schema does not declare land as they are.
func TestAcceptanceNewFields(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		e.accept(t, []cstream{exchangeRate("overwrite", 12, 12, 42)}, exchangeRates("exchange_rate"))
		second := []string{
			rec("exchange_rate", `{"id":1,"currency":"USD","date":"2020-03-31T00:00:00Z","newFieldString":"Value for new field","newFieldNumber":3,"HKD":10.1,"NZD":700.1}`, 1602637600000),
			`{"type":"STATE","state":{"type":"GLOBAL","global":{"shared_state":{"checkpoint":2},"stream_states":[]}}}`,
			complete("exchange_rate"),
		}
		e.accept(t, []cstream{exchangeRate("overwrite", 13, 13, 43)}, second)
		sameRecords(t, "exchange_rate", dataIn(t, second), e.stored("exchange_rate"))
	})
}

// DAT testSyncUsesAirbyteStreamNamespaceIfNotNull and testNamespaces
// (namespace_test_cases), BFIT testNamespaces: streams in namespaces with
// accents, leading digits, spaces, dots and dashes sync; the collection is
// the stream's, as namespaces are not part of Keen collection names.
func TestAcceptanceNamespaces(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		for _, ns := range []string{"public", "1_namespace_with_a_leading_digit", "namespace_with_àccents_ünïcödé", "namespace with spaces", "namespace.with.dots", "namespace-with-dashes", "UPPER_case_Namespace"} {
			t.Run(ns, func(t *testing.T) {
				e := newEnvOver(t, tr, emulator.Options{})
				in := []string{
					recNS("data_stream", ns, `{"id":1,"name":"first"}`),
					recNS("data_stream", ns, `{"id":2,"name":"second"}`),
					fmt.Sprintf(`{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"data_stream","namespace":%q},"stream_state":{"id":2}}}}`, ns),
					statusNS("data_stream", ns, "COMPLETE"),
				}
				e.accept(t, []cstream{{name: "data_stream", ns: ns, mode: "overwrite", gen: 3, minGen: 3, syncID: 7, bare: true}}, in)
				sameRecords(t, "data_stream", dataIn(t, in), e.stored("data_stream"))
				e.generationsOf(t, "data_stream", 3)
			})
		}
	})
}

// DAT testSyncWriteSameTableNameDifferentNamespace: one stream name in two
// namespaces; both land, in the one collection of that name (a WARN says
// so), which is why neither may truncate it.
func TestAcceptanceSameNameDifferentNamespaces(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		in := []string{
			recNS("exchange_rate", "source_namespace", `{"id":1,"currency":"USD"}`),
			recNS("exchange_rate", "diff_source_namespace", `{"id":1,"currency":"USD"}`),
			recNS("exchange_rate", "diff_source_namespace", `{"id":2,"currency":"EUR"}`),
			`{"type":"STATE","state":{"data":{"start_date":"2020-09-02"}}}`,
			statusNS("exchange_rate", "source_namespace", "COMPLETE"),
			statusNS("exchange_rate", "diff_source_namespace", "COMPLETE"),
		}
		r := e.accept(t, []cstream{{name: "exchange_rate", ns: "source_namespace", mode: "append", bare: true}, {name: "exchange_rate", ns: "diff_source_namespace", mode: "append", bare: true}}, in)
		sameRecords(t, "exchange_rate", dataIn(t, in), e.stored("exchange_rate"))
		if !strings.Contains(r.logs(), `"diff_source_namespace.exchange_rate", "source_namespace.exchange_rate" all write to collection "exchange_rate"`) &&
			!strings.Contains(r.logs(), `"source_namespace.exchange_rate", "diff_source_namespace.exchange_rate" all write to collection "exchange_rate"`) {
			t.Fatalf("no WARN that two namespaces share a collection:\n%s", r.logs())
		}
	})
}

// BFIT testFunkyCharacters, DAT's edge-case catalog: stream names in
// camelCase, ALL_CAPS, with accents, operators, a leading digit, reserved
// words, ':' and '/', each to the collection Keen's and Kafka's rules make
// of it; field names of the same kinds and "foo\nbar" values read back
// unchanged.
func TestAcceptanceFunkyCharacters(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		names := []struct{ stream, collection string }{
			{"streamWithCamelCase", "streamWithCamelCase"},
			{"stream_with_underscores", "stream_with_underscores"},
			{"STREAM_WITH_ALL_CAPS", "STREAM_WITH_ALL_CAPS"},
			{"CapitalCase", "CapitalCase"},
			{"stream_with_spécial_character", "stream_with_special_character"},
			{"stream_name_with_operator+1", "stream_name_with_operator1"},
			{"stream_name_with_numbers_123", "stream_name_with_numbers_123"},
			{"1stream_with_a_leading_number", "1stream_with_a_leading_number"},
			{"groups", "groups"},
			{"order", "order"},
			{"stream:with:colons_and_àccents", "streamwithcolons_and_accents"},
			{"stream/with/slashes", "streamwithslashes"},
			{"stream_with_edge_case_field_names_and_values", "stream_with_edge_case_field_names_and_values"},
		}
		fields := `{"id":42,"fieldWithCamelCase":"foo\nbar","field_with_underscore":"foo\nbar","FIELD_WITH_ALL_CAPS":"foo\nbar","field_with_spécial_character":"foo\nbar","field_name_with_operator+1":"foo\nbar","field_name_with_numbers_123":"foo\nbar","1field_with_a_leading_number":"foo\nbar","order":"foo\nbar","ProperCase":"foo\nbar","authorization":"foo\nbar","field with spaces":"foo\nbar","field:with/slashes":"foo\nbar"}`
		e := newEnvOver(t, tr, emulator.Options{})
		var streams []cstream
		var in []string
		for _, n := range names {
			streams = append(streams, cstream{name: n.stream, mode: "append", gen: 1, minGen: 0, syncID: 42, bare: true})
			in = append(in, rec(n.stream, fields, 1234))
		}
		in = append(in, `{"type":"STATE","state":{"data":{"done":true}}}`)
		for _, n := range names {
			in = append(in, complete(n.stream))
		}
		e.accept(t, streams, in)
		want := dataIn(t, in[:1])
		for _, n := range names {
			sameRecords(t, n.stream+" -> "+n.collection, want, e.stored(n.collection))
		}
		e.noRejections()
	})
}

// BFIT testBasicTypes, testContainerTypes, testUnions, testUnknownTypes;
// DAT's data-type tests and testAirbyteTimeTypes: Unicode, dates of the
// years 1504 and 9999, date-times with and without a zone, times, a number
// of 400 digits, the extremes of 64-bit integers, booleans and nulls,
// arrays and objects at depth, and values of types the schema does not
// declare. Each reads back exactly as sent, but for arrays holding objects
// or arrays, which Keen's rules allow only as a string of their JSON text,
// and numbers beyond the range of a double (the 400 digits), which read
// back as a string of their digits (the Bulk CDK nulls such a number where
// the destination cannot hold it; a string keeps it). A number of 300
// digits, within a double's range, stays a number.
func TestAcceptanceDataTypes(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		digits400 := strings.Repeat("1234567890", 40)
		in := []string{
			rec("data_types", `{"id":1,"string":"Привет, 世界 🎉 ünïcödé","emoji":"🙂","empty":"","escapes":"tab\there \"quoted\" back\\slash \u0001"}`, 1),
			rec("data_types", `{"id":2,"date":"1504-02-29","date_9999":"9999-12-31","datetime_tz":"9999-12-31T23:59:59.999999Z","datetime_offset":"1504-02-29T12:00:00+05:30","datetime_local":"2021-01-23T03:04:05","time":"23:59:59.123456","time_tz":"10:15:30+05:30"}`, 2),
			rec("data_types", `{"id":3,"big":`+digits400+`,"negative_big":-`+digits400+`,"large":`+digits400[:300]+`,"tiny":-1e-300,"frac":0.1,"max_int64":9223372036854775807,"min_int64":-9223372036854775808,"zero":0,"bool":true,"false":false,"null":null}`, 3),
			rec("data_types", `{"id":4,"array":["a",1,true,null,1.5],"object":{"nested":{"deep":[1,2,3],"s":"x"}},"empty_array":[],"empty_object":{}}`, 4),
			rec("data_types", `{"id":5,"union":"a string now","unknown":{"anything":[1,"two"]}}`, 5),
			rec("data_types", `{"id":6,"union":12,"unknown":"a string"}`, 6),
			`{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"data_types"},"stream_state":{"id":7}}}}`,
			rec("data_types", `{"id":7,"array_of_objects":[{"a":1},{"b":[2,3]}],"array_of_arrays":[[1,2],[3]],"object_with_array_of_objects":{"lines":[{"sku":"A-1","qty":2}]}}`, 7),
			`{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"data_types"},"stream_state":{"id":8}}}}`,
			complete("data_types"),
		}
		e := newEnvOver(t, tr, emulator.Options{})
		schema := `{"type":"object","properties":{"id":{"type":"integer"},"string":{"type":"string"},"date":{"type":"string","format":"date"},"datetime_tz":{"type":"string","format":"date-time","airbyte_type":"timestamp_with_timezone"},"datetime_local":{"type":"string","format":"date-time","airbyte_type":"timestamp_without_timezone"},"time":{"type":"string","format":"time","airbyte_type":"time_without_timezone"},"big":{"type":"number"},"array":{"type":"array"},"object":{"type":"object"},"union":{"oneOf":[{"type":"string"},{"type":"integer"}]},"unknown":{}}}`
		e.accept(t, []cstream{{name: "data_types", mode: "append", schema: schema, bare: true}}, in)
		want := dataIn(t, in[:6])
		want[2] = strings.ReplaceAll(want[2], `"big":`+digits400, `"big":"`+digits400+`"`)
		want[2] = strings.ReplaceAll(want[2], `"negative_big":-`+digits400, `"negative_big":"-`+digits400+`"`)
		want = append(want, canonical(t, []byte(`{"id":7,"array_of_objects":"[{\"a\":1},{\"b\":[2,3]}]","array_of_arrays":"[[1,2],[3]]","object_with_array_of_objects":{"lines":"[{\"sku\":\"A-1\",\"qty\":2}]"}}`)))
		got := e.stored("data_types")
		sameRecords(t, "data_types", want, got)
		if all := strings.Join(got, ""); !strings.Contains(all, `"big":"`+digits400+`"`) || !strings.Contains(all, `"large":`+digits400[:300]+`,`) {
			t.Fatal("the 400-digit number was not kept digit for digit as a string, or the 300-digit one as a number")
		}
		e.noRejections()
	})
}

// BFIT testNoData: a sync with a state and no record writes nothing and
// echoes the state.
func TestAcceptanceNoData(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		in := []string{streamState("test_stream", `"x"`), complete("test_stream")}
		r := e.accept(t, []cstream{{name: "test_stream", mode: "append", gen: 1, syncID: 42, bare: true}}, in)
		if len(r.states()) != 1 {
			t.Fatalf("%d states echoed, want 1", len(r.states()))
		}
		if n := len(e.events("test_stream")); n != 0 {
			t.Fatalf("%d events written from no record", n)
		}
	})
}

// BFIT testMidSyncCheckpointingStreamState: a state is echoed, with its
// record counted, while the input is still open.
func TestAcceptanceMidSyncCheckpointing(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		e := newEnvOver(t, tr, emulator.Options{})
		cat := e.write("catalog.json", catalogDoc(cstream{name: "test_stream", mode: "append", bare: true}))
		cmd, stdin, stdout, _ := e.startSync(t, cat)
		fmt.Fprint(stdin, lines(rec("test_stream", `{"id":12}`, 1234), `{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"test_stream"},"stream_state":{"foo":"bar1"}}}}`))
		dec := json.NewDecoder(stdout)
		for {
			var m struct {
				Type  string `json:"type"`
				State struct {
					Stream struct {
						StreamState map[string]any `json:"stream_state"`
					} `json:"stream"`
					DestinationStats struct {
						RecordCount float64 `json:"recordCount"`
					} `json:"destinationStats"`
				} `json:"state"`
			}
			if err := dec.Decode(&m); err != nil {
				t.Fatalf("no state while the input is open: %v", err)
			}
			if m.Type != "STATE" {
				continue
			}
			if m.State.DestinationStats.RecordCount != 1 || m.State.Stream.StreamState["foo"] != "bar1" {
				t.Fatalf("state %+v, want stream_state foo=bar1 and recordCount 1", m.State)
			}
			break
		}
		stdin.Close()
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
		sameRecords(t, "test_stream", []string{`{"id":12}`}, e.stored("test_stream"))
	})
}

// The Bulk CDK's refresh cases. A record of test_stream as BFIT writes it.
func refreshRecord(id int, updatedAt string, extractedAt int64) string {
	return rec("test_stream", fmt.Sprintf(`{"id":%d,"updated_at":%q,"name":"foo_%d_%d"}`, id, updatedAt, id, extractedAt), extractedAt)
}

func testStream(gen, minGen, syncID int) cstream {
	return cstream{name: "test_stream", mode: "append", gen: gen, minGen: minGen, syncID: syncID, bare: true,
		schema: `{"type":"object","properties":{"id":{"type":"integer"},"updated_at":{"type":"string","format":"date-time"},"name":{"type":"string"}}}`}
}

// interrupt runs a sync that is stopped after its state is acknowledged,
// as BFIT's runSyncUntilStateAck without a graceful shutdown: killed, or
// (a failed source) its input ended without the platform's COMPLETE.
func (e *env) interrupt(t *testing.T, s cstream, record string, kill bool) {
	t.Helper()
	state := `{"type":"STATE","state":{"type":"STREAM","stream":{"stream_descriptor":{"name":"test_stream"},"stream_state":{}}}}`
	if !kill {
		e.accept(t, []cstream{s}, []string{record, state})
		return
	}
	cmd, stdin, stdout, _ := e.startSync(t, e.write("catalog.json", catalogDoc(s)))
	fmt.Fprint(stdin, lines(record, state))
	waitForState(t, stdout)
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	stdin.Close()
}

// BFIT testTruncateRefresh, and testTruncateRefreshNoData / testClear:
// after an append sync (generation 12), a truncate refresh (generation 13
// = minimum) that completes leaves only its own record, or nothing when it
// sent none.
func TestAcceptanceTruncateRefresh(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		for _, tt := range []struct {
			name   string
			second []string
		}{
			{"testTruncateRefresh", []string{rec("test_stream", `{"id":42,"name":"second_value"}`, 1234), complete("test_stream")}},
			{"testClear", []string{complete("test_stream")}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				e := newEnvOver(t, tr, emulator.Options{})
				e.accept(t, []cstream{testStream(12, 0, 42)}, []string{rec("test_stream", `{"id":42,"name":"first_value"}`, 1234), complete("test_stream")})
				e.accept(t, []cstream{testStream(13, 13, 43)}, tt.second)
				sameRecords(t, "test_stream", dataIn(t, tt.second), e.stored("test_stream"))
				if len(tt.second) > 1 {
					e.generationsOf(t, "test_stream", 13)
				}
			})
		}
	})
}

// BFIT testInterruptedTruncateWithPriorData, testInterruptedTruncateWithoutPriorData
// and resumeAfterCancelledTruncate, each with the truncate refresh stopped
// two ways: the connector killed after its state, and the source failing
// (the platform closes the input without COMPLETE). The stopped attempt
// deletes nothing; the next attempt of the same refresh (generation 42)
// that completes replaces the first sync's events and keeps both attempts';
// a refresh cancelled for an append (generation 43, minimum 0) keeps all.
func TestAcceptanceInterruptedTruncate(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		first := []string{refreshRecord(1, "2024-01-23T01:00:00Z", 100), refreshRecord(2, "2024-01-23T01:00:00Z", 100), complete("test_stream")}
		interrupted := refreshRecord(1, "2024-01-23T02:00:00Z", 200)
		third := []string{refreshRecord(2, "2024-01-23T03:00:00Z", 300), complete("test_stream")}
		tests := []struct {
			name      string
			prior     bool
			third     cstream
			wantAfter []string // the records left after the third sync
		}{
			{"testInterruptedTruncateWithPriorData", true, testStream(42, 42, 42), []string{interrupted, third[0]}},
			{"testInterruptedTruncateWithoutPriorData", false, testStream(42, 42, 42), []string{interrupted, third[0]}},
			{"resumeAfterCancelledTruncate", true, testStream(43, 0, 43), []string{first[0], first[1], interrupted, third[0]}},
		}
		for _, tt := range tests {
			for _, kill := range []bool{true, false} {
				how := "failed source"
				if kill {
					how = "killed"
				}
				t.Run(tt.name+"/"+how, func(t *testing.T) {
					e := newEnvOver(t, tr, emulator.Options{})
					var before []string
					if tt.prior {
						e.accept(t, []cstream{testStream(41, 0, 41)}, first)
						before = dataIn(t, first)
					}
					e.interrupt(t, testStream(42, 42, 42), interrupted, kill)
					sameRecords(t, "after the interrupted truncate", append(before, dataIn(t, []string{interrupted})...), e.stored("test_stream"))
					e.accept(t, []cstream{tt.third}, third)
					sameRecords(t, "after the next sync", dataIn(t, tt.wantAfter), e.stored("test_stream"))
				})
			}
		}
	})
}

// BFIT testManyStreamsCompletion: 21 streams truncated in one sync, each
// replacing its own collection's earlier events once the platform reports
// it COMPLETE.
func TestAcceptanceManyStreamsCompletion(t *testing.T) {
	eachTransport(t, func(t *testing.T, tr string) {
		const n = 21
		e := newEnvOver(t, tr, emulator.Options{})
		var before, after []cstream
		var first, second, completes []string
		for i := range n {
			name := fmt.Sprintf("test_stream_%d", i)
			before = append(before, cstream{name: name, mode: "append", gen: 41, syncID: 41, bare: true})
			after = append(after, cstream{name: name, mode: "append", gen: 42, minGen: 42, syncID: 42, bare: true})
			first = append(first, rec(name, fmt.Sprintf(`{"id":1,"name":"old_%d"}`, i), 100))
			second = append(second, rec(name, fmt.Sprintf(`{"id":1,"name":"foo_%d"}`, i), 100))
			completes = append(completes, complete(name))
		}
		e.accept(t, before, append(first, completes...))
		e.accept(t, after, append(second, completes...))
		for i := range n {
			name := fmt.Sprintf("test_stream_%d", i)
			sameRecords(t, name, dataIn(t, second[i:i+1]), e.stored(name))
		}
	})
}

// recNS is a RECORD of a stream in a namespace.
func recNS(stream, ns, data string) string {
	return fmt.Sprintf(`{"type":"RECORD","record":{"stream":%q,"namespace":%q,"data":%s,"emitted_at":1}}`, stream, ns, data)
}

// statusNS is a STREAM_STATUS of a stream in a namespace.
func statusNS(stream, ns, status string) string {
	return fmt.Sprintf(`{"type":"TRACE","trace":{"type":"STREAM_STATUS","emitted_at":1,"stream_status":{"stream_descriptor":{"name":%q,"namespace":%q},"status":%q}}}`, stream, ns, status)
}
