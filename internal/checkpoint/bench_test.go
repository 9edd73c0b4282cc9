package checkpoint

import "testing"

// BenchmarkAcks numbers records and finishes them as four producers
// acknowledge them: each takes every fourth record, and answers for 256 of
// its records at a time, so most records finish ahead of the watermark.
// A STATE every 1,000 records. Per record.
func BenchmarkAcks(b *testing.B) {
	const lanes, batch = 4, 256
	tr := New(func([]byte) error { return nil })
	stamp := func(int64) []byte { return nil }
	b.ReportAllocs()
	seqs := make([]uint64, 0, lanes*batch)
	for b.Loop() {
		seqs = append(seqs, tr.Next())
		if len(seqs)%1000 == 0 {
			_ = tr.State(AllStreams, stamp)
		}
		if len(seqs) == cap(seqs) {
			for lane := range lanes {
				for i := lane; i < len(seqs); i += lanes {
					if err := tr.Done(seqs[i]); err != nil {
						b.Fatal(err)
					}
				}
			}
			seqs = seqs[:0]
		}
	}
}
