// Command mutants checks that the tests catch the bugs they are meant to:
// it plants each bug of a list, one at a time, in a copy of the working
// tree, runs the tests named for it, and prints which bugs were caught. A
// bug that survives, a bug whose code is no longer where the list says (the
// list must follow the code) or a mutant that does not build fails the run.
// `make mutants` runs it; it takes minutes, so it is not part of make test.
//
// Each class of bug fixed adds a line to the list, with the test that
// caught it.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// mutant is one planted bug: in file, the text from (which must occur
// exactly once) becomes to; the tests of pkg matching run must then fail.
type mutant struct {
	name     string
	file     string
	from, to string
	pkg, run string
}

var mutants = []mutant{
	{"the ring of records finished ahead loses them when it grows", "internal/checkpoint/checkpoint.go",
		"\t\tif old[s&oldMask] {", "\t\tif false && old[s&oldMask] {", "./internal/checkpoint", "TestFinishedFarAhead"},
	{"a refusal counted as stored", "internal/bulk/bulk.go",
		"if r := results[c][i]; r.Success {", "if r := results[c][i]; r.Success || true {", "./internal/bulk", "TestOutcomesFollowKeensAnswer"},
	{"results matched to the wrong event", "internal/bulk/bulk.go",
		"if r := results[c][i]; r.Success {", "if r := results[c][len(results[c])-1-i]; r.Success {", "./internal/bulk", "TestOutcomesFollowKeensAnswer"},
	{"an answer short of results taken", "internal/bulk/bulk.go",
		"if got, sent := len(results[c]), len(b.events[c]); got != sent {", "if got, sent := len(results[c]), len(b.events[c]); got > sent {", "./internal/bulk", "TestAnswersThatDoNotMatch"},
	{"a refusal counted toward the wrong state", "internal/checkpoint/checkpoint.go",
		"if p.after >= seq && (p.scope == AllStreams || p.scope == plan) {", "if p.after >= seq {", "./internal/checkpoint", "TestRefusalsCountTowardTheirState"},
	{"carried refusals lost", "internal/checkpoint/checkpoint.go",
		"\t} else if n := t.carry[scope]; n > 0 {", "\t} else if n := t.carry[scope]; n > 1<<40 {", "./internal/checkpoint", "TestRefusalsCountTowardTheirState"},
	{"epoch seconds/milliseconds boundary moved from 1e10 to 1e11", "internal/keen/timestamp.go",
		"minEpochMillis  = 1e10", "minEpochMillis  = 1e11", "./internal/keen", "TestParseCursor"},
	{"NOT_LEADER_FOR_PARTITION classified as fatal", "internal/sink/sink.go",
		`6: "NOT_LEADER_FOR_PARTITION", `, "", "./internal/sink", "TestClassify"},
	{"THROTTLING_QUOTA_EXCEEDED classified as fatal", "internal/sink/sink.go",
		`89: "THROTTLING_QUOTA_EXCEEDED", `, "", "./internal/sink", "TestRetriableCodes"},
	{"a lane's bytes given back to another lane", "internal/sink/sink.go",
		"s.budget.release(k.lane, int64(len(e.Buf)))", "s.budget.release(0, int64(len(e.Buf)))", "./internal/sink", "TestLanesOverALink"},
	{"a cursor of year 0 taken for a time", "internal/keen/timestamp.go",
		"if y := t.Year(); y < 1 || y > 9999 {", "if y := t.Year(); y < 0 || y > 9999 {", "./internal/keen", "TestParseCursor"},
	{"rejected records not counted in GLOBAL and LEGACY states", "internal/pipeline/pipeline.go",
		"records, rejected = p.total, p.rejectedTotal", "records, rejected = p.total, 0", "./cmd/destination-keen", "TestRejectedCounts"},
	{"SIGTERM returns at once, skipping the bounded flush", "internal/write/write.go",
		"\"The sync was stopped by a signal before the end of its input\"))\n\t}",
		"\"The sync was stopped by a signal before the end of its input\"))\n\t\treturn s.firstFailure()\n\t}", "./cmd/destination-keen", "TestSIGTERM"},
	{"state released before its records are acknowledged", "internal/checkpoint/checkpoint.go",
		"if len(t.pending) == 0 || t.pending[0].after > t.done || t.emitErr != nil {", "if len(t.pending) == 0 || t.emitErr != nil {", "./internal/checkpoint", ""},
	{"recordCount off by one", "internal/pipeline/pipeline.go",
		"records, rejected = p.sinceState[plan.Index], p.rejectedSince[plan.Index]", "records, rejected = p.sinceState[plan.Index]+1, p.rejectedSince[plan.Index]", "./cmd/destination-keen", "TestStateCounting"},
	{"no emitted_at fallback when the cursor is not a time", "internal/pipeline/pipeline.go",
		"if !fromCursor {\n\t\tts = time.UnixMilli(m.EmittedAt)", "if false {\n\t\tts = time.UnixMilli(m.EmittedAt)", "./cmd/destination-keen", "TestSyncTimestampsAndEvents"},
	{"keen.addons dropped from the source's keen object", "internal/keen/event.go",
		"kept[i] = m.Value", `if k != "addons" { kept[i] = m.Value }`, "./internal/keen", ""},
	{"leading _ not trimmed from collection names", "internal/keen/names.go",
		`strings.TrimLeft(name, "_.")`, `strings.TrimLeft(name, ".")`, "./internal/keen", "TestCollectionName"},
	{"the key not scrubbed from logs and traces", "internal/airbyte/emitter.go",
		"s = strings.ReplaceAll(s, secret, Redacted)", "s = strings.ReplaceAll(s, secret, secret)", "./internal/airbyte", ""},
	{"a refresh (generation == minimum > 0) not truncating", "internal/catalog/catalog.go",
		"*gen > 0 && *gen == *minGen", "*gen > 0 && *gen == *minGen+1", "./internal/catalog", ""},
	{"oversized limit raised above Kafka's default", "internal/sink/sink.go",
		"const DefaultMaxMessageBytes = 1_000_000", "const DefaultMaxMessageBytes = 2_000_000", "./cmd/destination-keen", "TestOversizedRecords"},
	{"idempotence off", "internal/sink/sink.go",
		"c.Producer.Idempotent = true", "c.Producer.Idempotent = false", "./cmd/destination-keen", "TestRetriableBrokerErrors/REQUEST_TIMED_OUT"},
	{"lanes kept on a dead seed", "internal/sink/sink.go",
		"if len(seeds.Dead) == 0 {", "if true {", "./cmd/destination-keen", "TestDeadSeed"},
	{"a TLS port that is not Kafka reported as a broker refusing records", "internal/sink/sink.go",
		"			return 0, &notKafka{err}", "			return 0, err", "./cmd/destination-keen", "TestBrokersThatAreNotKafka"},
	{"one dead seed fails the probe", "internal/sink/sink.go",
		"if len(s.Live) == 0 {", "if len(s.Dead) > 0 {", "./cmd/destination-keen", "TestDeadSeed"},
	{"a lane's bytes in flight not capped", "internal/sink/sink.go",
		"if b.used[k] == 0 || b.used[k]+n <= b.limit {", "if true {", "./internal/sink", "TestBudget|TestLanesOverALink"},
	{"one producer whatever the round trip", "internal/sink/sink.go",
		"return min(max(int((rtt+LaneRoundTrip-1)/LaneRoundTrip), 1), MaxAutoLanes)", "return 1", "./internal/sink", "TestAutoLanes|TestLanesOverALink"},
	{"the emulator's link without its delay", "tools/keenlocal/emulator/latency.go",
		"chunk{time.Now().Add(c.d), ", "chunk{time.Now(), ", "./tools/keenlocal/emulator", "TestLatency|TestDelayedConn"},
	{"a message type of a later release refused", "internal/message/message.go",
		"m.Type, m.TypeName = Unknown, name\n\t\treturn nil", "return &Error{Reason: \"unknown message type\"}", "./internal/message", "TestDecode"},
	{"a known message type in lower case skipped as a later release's", "internal/message/message.go",
		"if _, known := knownTypes[upper]; known {", "if _, known := knownTypes[upper]; known && false {", "./internal/message", "TestDecode"},
	{"the token tally's 'none' left out for streams without derived tokens", "internal/write/write.go",
		"none := max(c.Sent()-ours-theirs, 0)", "none := max(c.Sent()-ours-theirs-theirs, 0)", "./cmd/destination-keen", "TestTokenTally"},
	{"an api_url without /3.0 blamed on the Project ID", "internal/keenapi/keenapi.go",
		`case s == http.StatusNotFound && se.ErrorCode == "":`, `case s == http.StatusNotFound && se.ErrorCode == "none":`, "./internal/keenapi", "TestDeleteCollection"},
	{"a record of a namespace not in the catalog taken for the only stream of its name", "internal/catalog/catalog.go",
		`if ps := c.byName[stream]; namespace == "" && len(ps) == 1 {`, `if ps := c.byName[stream]; len(ps) == 1 {`, "./internal/catalog", "TestLookup"},
	{"a GLOBAL state without a global object echoed", "internal/message/state.go",
		"if jsonx.KindOf(sp.global) != jsonx.Object {", "if false {", "./internal/message", "TestStates"},
	{"a stream descriptor taken from inside a state's blob", "internal/message/state.go",
		"if jsonx.KeyIs(key, name) {", `if jsonx.KeyIs(key, name) || jsonx.KeyIs(key, "stream_state") {`, "./internal/message", "TestStates"},
	{"a state's destinationStats written without its rejected records", "internal/message/state.go",
		"\tif rejected > 0 {\n\t\tout = append(out, `,\"rejectedRecordCount\":`...)", "\tif rejected > 1<<62 {\n\t\tout = append(out, `,\"rejectedRecordCount\":`...)", "./internal/pipeline", "TestStateCounts"},
	{"the catalog read strictly", "internal/catalog/catalog.go",
		"schemas.ValidateLenient(\"ConfiguredAirbyteCatalog\", doc)", "schemas.Validate(\"ConfiguredAirbyteCatalog\", doc)", "./internal/catalog", "TestLiberalReading"},
	{"a whole number written as a float refused", "schemas/integer.go",
		"v, ok := ParseInteger(b)", "v, err := strconv.ParseInt(string(b), 10, 64); ok := err == nil", "./internal/catalog", "TestLiberalReading"},
	{"the namespace left out of a TRACE's stream descriptor", "internal/airbyte/emitter.go",
		"te.StreamDescriptor.Namespace = &f.Namespace", "_ = f.Namespace", "./cmd/destination-keen", "TestTraceNamesTheNamespace"},
	// Config mistakes are config_errors.
	{"a broker port out of range let through", "internal/config/config.go",
		"case !validPort(port):", "case !validPort(port) && false:", "./internal/config", "TestParseErrors"},
	{"a key with a line break let through", "internal/config/config.go",
		"return r < 0x20 || r == 0x7f", "return r < 0x09", "./internal/config", "TestParseErrors"},
	// Options reach their components.
	{"the compression option not passed to the producer", "internal/sink/sink.go",
		"o := Options{Compression: cfg.Compression,", `o := Options{Compression: "lz4",`, "./cmd/destination-keen", "TestEveryOptionReachesItsComponent/compression"},
	{"kafka_producers not passed to the sink", "internal/sink/sink.go",
		"Lanes: cfg.Producers,", "Lanes: 0,", "./cmd/destination-keen", "TestEveryOptionReachesItsComponent/kafka_producers"},
	{"infer_timestamp not passed to the catalog", "internal/catalog/catalog.go",
		"return Options{InferTimestamp: cfg.InferTimestamp, Tokens: cfg.Tokens}", "return Options{InferTimestamp: true, Tokens: cfg.Tokens}", "./cmd/destination-keen", "TestEveryOptionReachesItsComponent/infer_timestamp"},
	{"a typo three edits away not suggested", "internal/config/typos.go",
		`best, bestD := "", 4`, `best, bestD := "", 3`, "./internal/config", "TestNearest"},
	{"a typo suggested beyond a third of the option's length", "internal/config/typos.go",
		"if d < bestD && d*3 <= len(o) {", "if d < bestD && d*2 <= len(o) {", "./internal/config", "TestNearest"},
	{"a long name's hash taken after the other fixes", "internal/keen/conform.go",
		"h.Write([]byte(name))", "h.Write([]byte(n))", "./internal/keen", "TestFixNameLongHash"},
	{"an append of generation 0 truncating", "internal/catalog/catalog.go",
		"*gen > 0 && *gen == *minGen", "*gen >= 0 && *gen == *minGen", "./internal/catalog", "TestTruncation"},
	// Keen's event rules.
	{"a '.' in a key not noted by the validating pass", "internal/jsonx/jsonx.go",
		"t['.'] = false", "t['.'] = true", "./internal/jsonx", "TestTraits"},
	{"an array of arrays sent as it is", "internal/keen/conform.go",
		"nested = k == jsonx.Object || k == jsonx.Array", "nested = k == jsonx.Object", "./internal/keen", "TestConform"},
	{"a renamed property overwrites its sibling", "internal/keen/conform.go",
		"ms[i].newName = freeName(FixName(ms[i].name), taken)", "ms[i].newName = FixName(ms[i].name)", "./internal/keen", "TestConform"},
	{"a number beyond a double not noted by the validating pass", "internal/jsonx/jsonx.go",
		"\t\todd = true\n\t\ti++", "\t\ti++", "./internal/jsonx", "TestTraits"},
	{"a surrogate pair taken for lone", "internal/jsonx/jsonx.go",
		"\t\t\t\tcase surrogatePair(b[i:]):\n\t\t\t\t\ti += 12", "\t\t\t\tcase false:\n\t\t\t\t\ti += 12", "./internal/jsonx", "TestLoneSurrogates"},
	{"a number beyond a double sent as it is", "internal/keen/conform.go",
		"return errors.Is(err, strconv.ErrRange)", "return errors.Is(err, nil)", "./internal/keen", "TestConform"},
	{"a name with a lone surrogate kept", "internal/keen/conform.go",
		"x.broken == 0 && jsonx.HasLoneSurrogate(m.Key)", "false", "./internal/keen", "TestConform"},
	{"a long record's stream taken from inside its data", "internal/message/long.go",
		`case s.depth == 2 && s.key1 == "record" && s.key2 == "stream":`, `case s.depth >= 2 && s.key1 == "record" && s.key2 == "stream":`, "./internal/message", "TestLongLine"},
	{"a long line's rest left unread", "internal/message/message.go",
		"\t\ts.feed(bytes.TrimSuffix(chunk, []byte(\"\\n\")))", "\t\t_ = chunk", "./internal/message", "TestLongLine"},
	{"a record too large for Keen conformed anyway", "internal/pipeline/pipeline.go",
		"(len(m.Data) <= max || keen.ConformedAtLeast(m.Data) <= max)", "(len(m.Data) <= max || true)", "./cmd/destination-keen", "TestHugeRecord"},
	{"a record whose renames fit Keen's limit left oversized", "internal/keen/conform.go",
		"saved += max(0, len(m.Key)-2-len(FixName(name)))", "saved += 0", "./cmd/destination-keen", "TestHugeRecord"},
	{"wide data's members all kept", "internal/message/message.go",
		"\t\t\tm.Members = nil // too wide to be worth keeping", "\t\t\tm.Members = append(m.Members, jsonx.Member{Key: key, Value: b[v:e], Traits: tr})", "./internal/message", "TestWideData"},
	{"nonconforming records sent unchanged", "internal/keen/conform.go",
		"func NeedsConform(tr jsonx.Traits) bool { return tr != 0 }", "func NeedsConform(tr jsonx.Traits) bool { return false }", "./cmd/destination-keen", "TestRealSources|TestNonconformingFixture"},
	{"a fractional epoch cursor read through a float64", "internal/keen/timestamp.go",
		"\tif len(s) > 64 {\n\t\treturn ParseEpoch(f)", "\tif len(s) > 0 {\n\t\treturn ParseEpoch(f)", "./internal/keen", "TestParseCursor"},
	{"emitted_at not range-checked", "internal/message/message.go",
		"if v < 0 || v > MaxEmittedAt {", "if false {", "./internal/message", "TestDecode"},
	{"the first data member's cursor kept when data repeats", "internal/message/message.go",
		"m.Members = m.Members[:0]\n\t\t\tif b[v] != '{' {", "if b[v] != '{' {", "./internal/message", "TestDecodeMembers"},
	{"an overwrite of a collection Keen does not know fails", "internal/keenapi/keenapi.go",
		"se.ErrorCode == errResourceNotFound {", "se.ErrorCode == \"none\" {", "./internal/keenapi", "TestDeleteCollection"},
	// Exactly once.
	{"no uniqueness token derived", "internal/pipeline/pipeline.go",
		"wk.token = wk.tokener.Append(wk.token[:0], &in)\n\treturn wk.token, tokenOurs", "return nil, tokenNone", "./cmd/destination-keen", "TestRetriedSyncAfterKill|TestRealSourcesTwice"},
	{"the cursor left out of the token", "internal/pipeline/pipeline.go",
		"in.Key, in.Cursor, in.Content = rec.Key, rec.Cursor, data", "in.Key, in.Content = rec.Key, data", "./cmd/destination-keen", "TestTokenInputs"},
	{"the record's content left out of the token", "internal/pipeline/pipeline.go",
		"in.Key, in.Cursor, in.Content = rec.Key, rec.Cursor, data", "in.Key, in.Cursor = rec.Key, rec.Cursor", "./cmd/destination-keen", "TestChangedRowsLand"},
	{"a retried attempt's records taken for new ones (the token hashes the whole line)", "internal/pipeline/pipeline.go",
		"token, outcome := p.token(wk, plan, &rec, m.Data)", "token, outcome := p.token(wk, plan, &rec, m.Line)", "./cmd/destination-keen", "TestRetriedSyncAfterKill/STREAM"},
	{"the content digest left out of the hashed sequence", "internal/keen/token.go",
		"b = field(b, 'd', d[:])", "_ = d", "./internal/keen", "TestTokensKeepVersions|TestTokenAsDocumented"},
	{"the source's own token replaced", "internal/keen/event.go",
		"if kept[tokenIndex] != nil {", "if false {", "./internal/keen", "TestAppendEventToken"},
	{"the emulator stores events of a token already seen", "tools/keenlocal/emulator/emulator.go",
		"if e.tokens[collection][tok] {", "if false {", "./tools/keenlocal/emulator", "TestUniquenessTokens"},
	// Overwrite without a gap.
	{"old generations deleted without the platform's COMPLETE", "internal/write/write.go",
		"if c := st.Completion(); c != pipeline.Completed {", "if c := st.Completion(); c == pipeline.Incomplete {", "./cmd/destination-keen", "TestOldEventsKeptWithoutCompletion"},
	{"a COMPLETE of one stream counted for every stream", "internal/pipeline/pipeline.go",
		"\tp.streams[it.plan.Index].apply(it.end)", "\tfor i := range p.streams {\n\t\tp.streams[i].apply(it.end)\n\t}", "./cmd/destination-keen", "TestOldEventsKeptWithoutCompletion/COMPLETE_for_another"},
	{"an ERROR of one stream counted for every stream", "internal/pipeline/pipeline.go",
		"targets = p.streams[it.plan.Index : it.plan.Index+1]", "_ = it.plan", "./cmd/destination-keen", "TestErrorOfOneStream"},
	{"a record after COMPLETE leaves the stream complete", "internal/pipeline/completion.go",
		"\t\tif c == Completed {\n\t\t\treturn Reopened", "\t\tif false {\n\t\t\treturn Reopened", "./internal/pipeline", "TestCompletion"},
	{"INCOMPLETE overridden by a later COMPLETE", "internal/pipeline/completion.go",
		"if c == Incomplete || c == Failed {", "if c == Failed {", "./cmd/destination-keen", "TestOldEventsKeptWithoutCompletion/INCOMPLETE|TestIncompleteStreamKeepsOldEvents"},
	{"an ERROR trace in the input ignored", "internal/pipeline/pipeline.go",
		"if name, ns, ok := message.TraceError(trace); ok {", "if name, ns, ok := message.TraceError(trace); ok && false {", "./cmd/destination-keen", "TestOldEventsKeptWithoutCompletion/an_ERROR"},
	{"the catalog requires members the connector never reads", "schemas/schemas.go",
		"required = slices.DeleteFunc(required, func(r any) bool { return r == m })", "_ = m", "./internal/catalog", "TestLiberalReading"},
	{"destination_object_name ignored", "internal/catalog/catalog.go",
		"named, what = p.ObjectName,", "_, what = p.ObjectName,", "./internal/catalog", "TestDestinationObjectName"},
	{"old generations deleted before every record is acknowledged", "internal/write/write.go",
		"case <-s.tracker.Drained():", "default:", "./cmd/destination-keen", "TestDeleteWaitsForEveryAcknowledgement"},
	{"the generation left out of the token", "internal/pipeline/pipeline.go",
		"in := keen.TokenInput{Collection: plan.Collection, Generation: r.Generation}", "in := keen.TokenInput{Collection: plan.Collection}", "./cmd/destination-keen", "TestRefreshOfTheSameRows"},
	{"only older generations deleted (lt for ne)", "internal/write/write.go",
		`Operator: "ne", PropertyValue: gen}`, `Operator: "lt", PropertyValue: gen}`, "./cmd/destination-keen", "TestOldEventsKeptWithoutCompletion/refresh_to_a_generation_below"},
	{"only newer generations deleted (gt for ne)", "internal/write/write.go",
		`Operator: "ne", PropertyValue: gen}`, `Operator: "gt", PropertyValue: gen}`, "./cmd/destination-keen", "TestOldEventsKeptWithoutCompletion/refresh_that_completed"},
	{"events from before generations kept", "internal/write/write.go",
		`Operator: "exists", PropertyValue: false}}`, `Operator: "exists", PropertyValue: true}}`, "./cmd/destination-keen", "TestReplaceWithoutAGap"},
	{"a generation's events without their generation", "internal/pipeline/pipeline.go",
		"rec.AppendEvent(env.Buf[:0], ts, token, gen)", "rec.AppendEvent(env.Buf[:0], ts, token, nil)", "./cmd/destination-keen", "TestReplaceWithoutAGap"},
	// Memory.
	{"event buffers grown by append again", "internal/pipeline/pipeline.go",
		"cap(env.Buf) < n {", "cap(env.Buf) < n && false {", "./internal/pipeline", "TestEventBuffersSized"},
	{"the operator's GOMEMLIMIT overridden", "internal/write/write.go",
		`|| getenv("GOMEMLIMIT") != ""`, "", "./internal/write", "TestGCHeadroom"},
	// The end of a sync.
	{"the sequencer deaf to a stop while it waits for input", "internal/pipeline/pipeline.go",
		"\t\tcase <-ctx.Done():\n\t\t\treturn nil\n\t\t}\n\t\tselect {\n\t\tcase <-b.done:", "\t\t}\n\t\tselect {\n\t\tcase <-b.done:", "./cmd/destination-keen", "TestSIGTERM$"},
	{"a state written after the sync has reported", "internal/checkpoint/checkpoint.go",
		"for !t.stopped {", "for {", "./internal/checkpoint", "TestDrainedAndStop"},
	{"drained before the last acknowledgement", "internal/checkpoint/checkpoint.go",
		"if t.sealed && t.done == t.next {", "if t.sealed {", "./internal/checkpoint", "TestDrainedAndStop"},
	// The emulator, which the end-to-end tests trust.
	{"the emulator files a re-read offset twice", "tools/keenlocal/emulator/emulator.go",
		"if next, seen := parts[r.Partition]; seen && r.Offset < next {", "if false {", "./tools/keenlocal/emulator", "TestReadBackWhileLeadersMove"},
	{"the emulator takes arrays of objects", "tools/keenlocal/emulator/rules.go",
		"case map[string]any, []any:\n\t\t\t\treturn fmt.Errorf(\"array", "case nil:\n\t\t\t\treturn fmt.Errorf(\"array", "./tools/keenlocal/emulator", "TestEventRules"},
}

func main() {
	only := pflag.String("only", "", "run the mutants whose name holds this text")
	pflag.Parse()
	if err := run(*only); err != nil {
		fmt.Fprintln(os.Stderr, "mutants:", err)
		os.Exit(1)
	}
}

func run(only string) error {
	root, err := os.Getwd()
	if err != nil {
		return err
	}
	// Beside the project, so that tests find ../shared as they do here.
	tmp, err := os.MkdirTemp(filepath.Dir(root), ".destination-keen-mutants-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err := copyTree(root, tmp); err != nil {
		return err
	}
	var survived, broken []string
	for _, m := range mutants {
		if only != "" && !strings.Contains(m.name, only) {
			continue
		}
		began := time.Now()
		verdict, err := try(tmp, m)
		if err != nil {
			broken = append(broken, fmt.Sprintf("%s: %v", m.name, err))
			verdict = "BROKEN"
		} else if verdict == "survived" {
			survived = append(survived, m.name)
		}
		fmt.Printf("%-9s %-62s %s %s\n", verdict, m.name, m.pkg, time.Since(began).Round(time.Second))
	}
	if len(broken) > 0 {
		return fmt.Errorf("mutants that no longer apply or do not build (update the list):\n  %s", strings.Join(broken, "\n  "))
	}
	if len(survived) > 0 {
		return fmt.Errorf("%d mutants survived the tests:\n  %s", len(survived), strings.Join(survived, "\n  "))
	}
	fmt.Println("every mutant was caught")
	return nil
}

// try plants m in the copy at dir, runs its tests and restores the file.
func try(dir string, m mutant) (string, error) {
	path := filepath.Join(dir, m.file)
	orig, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	if n := bytes.Count(orig, []byte(m.from)); n != 1 {
		return "", fmt.Errorf("%q occurs %d times in %s, want once", m.from, n, m.file)
	}
	if err := os.WriteFile(path, bytes.Replace(orig, []byte(m.from), []byte(m.to), 1), 0o644); err != nil {
		return "", err
	}
	defer os.WriteFile(path, orig, 0o644)
	args := []string{"test", "-count=1", "-timeout", "180s"} // a mutant may hang a test
	if m.run != "" {
		args = append(args, "-run", m.run)
	}
	cmd := exec.Command("go", append(args, m.pkg)...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	switch {
	case err == nil:
		return "survived", nil
	case bytes.Contains(out, []byte("[build failed]")) || bytes.Contains(out, []byte("[setup failed]")):
		return "", fmt.Errorf("does not build:\n%s", out)
	case errors.As(err, &ee) && (bytes.Contains(out, []byte("--- FAIL")) || bytes.Contains(out, []byte("panic: "))):
		return "caught", nil
	case errors.As(err, &ee):
		return "", fmt.Errorf("the tests did not run:\n%s", out)
	}
	return "", err
}

// copyTree copies the files git knows in root (tracked or not ignored) to
// dst, so that uncommitted changes are tried too.
func copyTree(root, dst string) error {
	cmd := exec.Command("git", "ls-files", "-z", "--cached", "--others", "--exclude-standard")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("git ls-files: %w", err)
	}
	for _, f := range strings.Split(strings.TrimRight(string(out), "\x00"), "\x00") {
		b, err := os.ReadFile(filepath.Join(root, f))
		if errors.Is(err, os.ErrNotExist) {
			continue // deleted in the working tree
		}
		if err != nil {
			return err
		}
		p := filepath.Join(dst, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
