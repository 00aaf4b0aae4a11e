import Foundation
import FlexServeModels

/// The GPU copy of one `PagedKVCache`'s keys and values, at the same physical slots: the host cache
/// keeps the block tables (and so the addressing), this holds the data, `[layer][K|V][slot][kvDim]`.
/// The host cache's `move` (committing accepted tree tokens) is recorded and replayed on the
/// device before the next forward pass reads the cache.
final class DeviceKVCache: @unchecked Sendable {
    weak var owner: PagedKVCache?
    let storage: DeviceBuffer
    let slots: Int
    let kvDim: Int
    let layers: Int
    let type: CUDADataType
    private var pendingMoves: [Int32] = []
    private let lock = NSLock()

    init(device: CUDADevice, cache: PagedKVCache, type: CUDADataType) throws {
        owner = cache
        slots = cache.capacityTokens
        kvDim = cache.kvHeads * cache.headDim
        layers = cache.layers
        self.type = type
        storage = try device.allocate(bytes: layers * 2 * slots * kvDim * type.bytes)
        cache.moveObserver = { [weak self] from, to in self?.recordMove(from: from, to: to) }
    }

    private func recordMove(from: Int32, to: Int32) {
        lock.lock(); defer { lock.unlock() }
        pendingMoves.append(from)
        pendingMoves.append(to)
    }

    /// The moves recorded since the last call, as (from, to) pairs flattened.
    func takeMoves() -> [Int32] {
        lock.lock(); defer { lock.unlock() }
        let m = pendingMoves
        pendingMoves.removeAll(keepingCapacity: true)
        return m
    }

    func keys(layer: Int) -> DevicePointer { storage.offset((2 * layer) * slots * kvDim * type.bytes) }
    func values(layer: Int) -> DevicePointer { storage.offset((2 * layer + 1) * slots * kvDim * type.bytes) }
}
