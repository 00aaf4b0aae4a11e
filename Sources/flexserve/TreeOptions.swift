import ArgumentParser
import FlexServe
import Foundation

/// The draft-tree flags of `spec-infer`, `serve` and `bench` (FlexFlow's, plus prompt lookup).
struct TreeOptions: ParsableArguments {
    @Option(name: .customLong("max-tree-depth"), help: "Draft tree depth.")
    var maxTreeDepth = 8

    @Option(name: .customLong("expansion-degree"), help: "Children at the third tree level (FlexFlow's schedule 1,1,k,1,...).")
    var expansionDegree = 3

    @Option(name: .customLong("max-tree-width"), help: "Beam width: children per node and frontier nodes kept at every depth (overrides --expansion-degree).")
    var maxTreeWidth: Int?

    @Option(name: .customLong("tree-expansion"), help: "Children per frontier node at each depth, comma-separated (e.g. 3,2,2,1); the last repeats. Overrides --expansion-degree.")
    var treeExpansion: String?

    @Option(name: .customLong("prompt-lookup"), help: "Also draft by copying what followed the context's last tokens where they occurred before: tokens per path (0: off; greedy requests).")
    var promptLookup = 0

    @Option(name: .customLong("speculative-disable-by-batch-size"), help: "Draft nothing in a step with at least this many requests decoding (vLLM's option; a batch already shares each weight read).")
    var disableByBatchSize: Int?

    var shape: TreeShape {
        get throws {
            var expansion = TreeShape.flexFlow(depth: max(1, maxTreeDepth), expansionDegree: expansionDegree)
            if let w = maxTreeWidth { expansion = Array(repeating: w, count: max(1, maxTreeDepth)) }
            if let list = treeExpansion {
                let fields = list.split(separator: ",", omittingEmptySubsequences: false)
                let parsed = fields.compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
                guard !parsed.isEmpty, parsed.count == fields.count else {
                    throw ValidationError("--tree-expansion must be comma-separated integers, got '\(list)'")
                }
                expansion = parsed
            }
            let shape = TreeShape(depth: maxTreeDepth, expansion: expansion, maxWidth: maxTreeWidth ?? max(16, expansionDegree),
                                  promptLookup: promptLookup, disableAtBatchSize: disableByBatchSize)
            try shape.validate()
            return shape
        }
    }
}
