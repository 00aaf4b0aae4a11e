/// The draft tree of one request: the root is the request's last token (not yet in the LLM's
/// cache); every node is a drafted continuation of its parent. Nodes are in topological order
/// (parents first), which is also the order of their cache entries during verification.
struct TokenTree: Sendable {
    struct Node: Sendable {
        var token: Int
        /// Index of the parent node, or `TokenTree.root`.
        var parent: Int
        /// 1 for children of the root.
        var depth: Int
        var children: [Int] = []
    }

    /// One sampled candidate at a node, in draw order (stochastic verification replays them in order).
    struct Draw: Sendable {
        var token: Int
        var ssm: Int
    }

    static let root = -1

    var nodes: [Node] = []
    /// Children of the root.
    var rootChildren: [Int] = []
    /// Stochastic drafting only: the draws made at each node (key `root` for the root) ...
    var draws: [Int: [Draw]] = [:]
    /// ... and each SSM's draft distribution there.
    var draftDistributions: [Int: [Int: TokenDistribution]] = [:]

    var isEmpty: Bool { nodes.isEmpty }

    func children(of node: Int) -> [Int] { node == Self.root ? rootChildren : nodes[node].children }

    func child(of node: Int, token: Int) -> Int? { children(of: node).first { nodes[$0].token == token } }

    /// Adds a child unless the parent already has one with this token; returns the child's index.
    @discardableResult
    mutating func addChild(of parent: Int, token: Int) -> Int {
        if let existing = child(of: parent, token: token) { return existing }
        let depth = parent == Self.root ? 1 : nodes[parent].depth + 1
        nodes.append(Node(token: token, parent: parent, depth: depth))
        let index = nodes.count - 1
        if parent == Self.root { rootChildren.append(index) } else { nodes[parent].children.append(index) }
        return index
    }

    /// Adds `tokens` as a path from the root, sharing the nodes it already has.
    mutating func addPath(_ tokens: [Int]) {
        var parent = Self.root
        for token in tokens { parent = addChild(of: parent, token: token) }
    }

    /// Node indices from the root's child down to `node`.
    func path(to node: Int) -> [Int] {
        var path: [Int] = []
        var n = node
        while n != Self.root { path.append(n); n = nodes[n].parent }
        return path.reversed()
    }

    /// Merges another tree in by common prefixes, keeping the other tree's draws and distributions.
    mutating func merge(_ other: TokenTree) {
        var map: [Int: Int] = [Self.root: Self.root]
        for (i, node) in other.nodes.enumerated() {
            map[i] = addChild(of: map[node.parent]!, token: node.token)
        }
        for (node, draws) in other.draws.sorted(by: { $0.key < $1.key }) {
            self.draws[map[node]!, default: []].append(contentsOf: draws)
        }
        for (node, dists) in other.draftDistributions {
            for (ssm, d) in dists { draftDistributions[map[node]!, default: [:]][ssm] = d }
        }
    }
}

/// The shape of the draft: how deep, how many children each frontier node gets at each depth,
/// and how many frontier nodes are kept per depth; and how long the prompt-lookup paths are.
public struct TreeShape: Sendable, Equatable, Codable {
    public var depth: Int
    /// Children per expanded node at depth d (0-based), e.g. FlexFlow's 1,1,3,1,1,1,1,1.
    public var expansion: [Int]
    /// Frontier nodes kept per depth (best cumulative draft probability first).
    public var maxWidth: Int
    /// Tokens per prompt-lookup path added to greedy requests' trees (0: none), see `PromptLookup`.
    public var promptLookup: Int
    /// A step with at least this many requests decoding drafts nothing (vLLM's `speculative_disable_by_batch_size`;
    /// nil: always draft). A batch already shares each weight read among its requests, and where verification is
    /// bound by arithmetic (a CPU) every tree token costs a good part of a decode step.
    public var disableAtBatchSize: Int?

    public init(depth: Int = 8, expansion: [Int]? = nil, maxWidth: Int = 16, promptLookup: Int = 0, disableAtBatchSize: Int? = nil) {
        self.depth = depth
        self.expansion = expansion ?? TreeShape.flexFlow(depth: depth, expansionDegree: 3)
        self.maxWidth = maxWidth
        self.promptLookup = promptLookup
        self.disableAtBatchSize = disableAtBatchSize
    }

    /// FlexFlow's schedule: one child everywhere except `expansionDegree` at the third level.
    public static func flexFlow(depth: Int, expansionDegree: Int) -> [Int] {
        (0..<depth).map { $0 == 2 ? expansionDegree : 1 }
    }

    /// An upper bound on the nodes of a request's tree drafted by `ssms` SSMs and prompt lookup,
    /// used to reserve KV-cache space and batch slots.
    public func maxTreeNodes(ssms: Int) -> Int {
        (depth > 0 ? ssms * maxNodes : 0) + promptLookup * PromptLookup.candidates
    }

    /// An upper bound on the nodes one SSM drafts: every frontier node gets all its children, and
    /// only then is the frontier cut to `maxWidth`.
    public var maxNodes: Int {
        var frontier = 1, total = 0
        for d in 0..<depth {
            let children = frontier * max(1, expansion[min(d, expansion.count - 1)])
            total += children
            frontier = min(maxWidth, children)
        }
        return total
    }

    public func validate() throws {
        guard depth >= 0, depth <= 64 else { throw GenerationError.invalidSetting("tree depth must be in 0...64, is \(depth)") }
        guard (0...64).contains(promptLookup) else { throw GenerationError.invalidSetting("prompt-lookup length must be in 0...64, is \(promptLookup)") }
        guard maxWidth >= 1 else { throw GenerationError.invalidSetting("max tree width must be >= 1, is \(maxWidth)") }
        if let n = disableAtBatchSize, n < 1 {
            throw GenerationError.invalidSetting("speculative-disable-by-batch-size must be >= 1, is \(n)")
        }
        guard expansion.allSatisfy({ $0 >= 1 }), !expansion.isEmpty || depth == 0 else {
            throw GenerationError.invalidSetting("every expansion degree must be >= 1")
        }
    }
}
