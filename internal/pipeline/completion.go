package pipeline

// What the platform says about how each stream ended, and the one rule that
// decides whether a truncating stream may replace its collection's older
// generations.
//
// Today's Airbyte platform forwards only RECORD and STATE messages from the
// source; when the source exits 0 it then sends one STREAM_STATUS COMPLETE
// per stream of the configured catalog, and when the source fails it sends
// no status at all before closing stdin. So the end of the input says
// nothing; a stream has ended well only when the platform said COMPLETE.
//
// The rule, as the sequencer applies it in input order:
//   - COMPLETE completes the stream; a repeated COMPLETE changes nothing.
//   - A record of the stream after its COMPLETE takes the completion back
//     (the platform's word no longer covers every record) until another
//     COMPLETE comes.
//   - INCOMPLETE is final for the sync: nothing after it completes the
//     stream again. (The Bulk CDK takes an INCOMPLETE from the platform for
//     a platform bug; keeping the old events is the safe reading.)
//   - An ERROR trace (a failure upstream: older platforms forwarded the
//     source's) is final too, for the stream it names, or for every stream
//     when it names none or one that is not in the catalog.
//   - A COMPLETE or INCOMPLETE of a stream that is not in the catalog
//     changes nothing (one WARN per stream).
//
// Only a Completed stream whose every record was acknowledged, in a sync
// that did not fail, replaces its older generations (package write).

// Completion is how a stream ended, as far as the platform said.
type Completion int32

// Completions.
const (
	NotCompleted Completion = iota // no COMPLETE for the stream
	Completed                      // COMPLETE, and no record of the stream since
	Reopened                       // a record came after its COMPLETE
	Incomplete                     // INCOMPLETE: not complete in this sync
	Failed                         // an ERROR trace: not complete in this sync
)

// end is what one TRACE says about a stream.
type end uint8

const (
	endComplete   end = iota + 1 // STREAM_STATUS COMPLETE
	endIncomplete                // STREAM_STATUS INCOMPLETE
	endError                     // TRACE ERROR
	endRecord                    // not a trace: a record of the stream
)

// next is the stream's completion after e.
func (c Completion) next(e end) Completion {
	if c == Incomplete || c == Failed {
		return c
	}
	switch e {
	case endComplete:
		return Completed
	case endIncomplete:
		return Incomplete
	case endError:
		return Failed
	case endRecord:
		if c == Completed {
			return Reopened
		}
	}
	return c
}

// Why says, for the log, why a stream that is not Completed keeps its
// collection's earlier events.
func (c Completion) Why() string {
	switch c {
	case Completed:
		return "the platform reported it COMPLETE"
	case Reopened:
		return "records of it came after the platform reported it COMPLETE"
	case Incomplete:
		return "the platform reported it INCOMPLETE"
	case Failed:
		return "the input holds an ERROR trace: something upstream failed"
	}
	return "the platform sent no COMPLETE for it; it sends one for every stream only when the source succeeded, so the source most likely failed"
}
