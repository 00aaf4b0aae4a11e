/// Reads of a decode step's weight bytes between its steps, each `ReadProbe.Pattern` in turn, so the steps and the
/// reads see the same neighbours (this machine is shared); the fastest pattern's GB/s is the bandwidth of those moments.
struct InterleavedReads {
    let probe: ReadProbe
    let bytes: Int
    private var seconds = ReadProbe.Pattern.allCases.map { _ in 0.0 }
    private var reads = ReadProbe.Pattern.allCases.map { _ in 0 }
    private var next = 0

    init(probe: ReadProbe, bytes: Int) { (self.probe, self.bytes) = (probe, bytes) }

    /// One read of `bytes`, in the next pattern.
    mutating func read() {
        let k = next % seconds.count
        seconds[k] += Double(bytes) / 1e9 / probe.read(bytes: bytes, ReadProbe.Pattern.allCases[k])
        reads[k] += 1
        next += 1
    }

    /// GB/s of the fastest pattern so far; nil before the first read.
    var gbs: Double? { seconds.indices.filter { reads[$0] > 0 }.map { Double(reads[$0] * bytes) / seconds[$0] / 1e9 }.max() }
}
