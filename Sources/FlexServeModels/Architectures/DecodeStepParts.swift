/// Which parts of a decode step run, for `flexserve bench bound`: the step cut down shows what holds it (with any
/// part left out, the logits are meaningless).
public struct DecodeStepParts: Hashable, Sendable, CustomStringConvertible {
    /// The projections' arithmetic; without it they read their weights as they would (`TokenProjection.run(readOnly:)`).
    public var arithmetic: Bool
    /// The work between the projections: norms, RoPE and the cache write, attention, quantization, SiLU·up.
    public var glue: Bool
    /// Each projection a phase of its own, both threads done before the next begins; without them (and then without
    /// the glue) each thread streams every projection in turn, taking pieces of the other's part as it goes.
    public var phaseEnds: Bool

    public init(arithmetic: Bool = true, glue: Bool = true, phaseEnds: Bool = true) {
        precondition(phaseEnds || !glue, "the glue needs the phase ends")
        (self.arithmetic, self.glue, self.phaseEnds) = (arithmetic, glue, phaseEnds)
    }

    public static let whole = DecodeStepParts()

    /// The step, then less and less of it: what `flexserve bench bound` runs.
    public static let cuts: [DecodeStepParts] = [
        whole, DecodeStepParts(arithmetic: false),
        DecodeStepParts(glue: false), DecodeStepParts(arithmetic: false, glue: false),
        DecodeStepParts(glue: false, phaseEnds: false), DecodeStepParts(arithmetic: false, glue: false, phaseEnds: false),
    ]

    public var description: String {
        if self == .whole { return "the step" }
        var missing: [String] = []
        if !phaseEnds { missing.append("phase ends") }
        if !glue { missing.append("glue") }
        if !arithmetic { missing.append("arithmetic") }
        return "no " + (missing.count == 1 ? missing[0] : missing.dropLast().joined(separator: ", ") + " or " + missing.last!)
    }
}
