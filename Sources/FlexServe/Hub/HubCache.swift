import Foundation

/// Errors of the HuggingFace cache lookup (no networking happens here).
public enum HubCacheError: Error, CustomStringConvertible, LocalizedError, Equatable {
    /// The text is neither an existing path nor a valid "org/name" repository id.
    case invalidRepoID(String)
    /// Nothing for this repository (or this revision of it) is in the cache.
    case notInCache(id: String, revision: String, cacheRoot: String)
    /// The snapshot exists but lacks files that serving needs.
    case incompleteSnapshot(id: String, revision: String, folder: String, missing: [String])
    /// A GGUF file was asked for (or needed) and is not in the snapshot.
    case ggufNotInSnapshot(id: String, folder: String, requested: String?, available: [String])

    public var description: String {
        switch self {
        case .invalidRepoID(let s):
            return "'\(s)' is neither an existing file or folder nor a HuggingFace model id of the form 'org/name'"
        case .notInCache(let id, let revision, let root):
            return "model '\(id)' (revision '\(revision)') is not in the HuggingFace cache at \(root); "
                + "download it with `flexserve download \(id)\(revision == "main" ? "" : " --revision \(revision)")` "
                + "(or set HF_HUB_CACHE / HF_HOME / --cache-folder to the cache that holds it)"
        case .incompleteSnapshot(let id, let revision, let folder, let missing):
            return "the cached snapshot of '\(id)' (revision '\(revision)') at \(folder) is incomplete: missing "
                + missing.joined(separator: ", ") + "; run `flexserve download \(id)` again"
        case .ggufNotInSnapshot(let id, let folder, let requested, let available):
            if let requested {
                return "GGUF file '\(requested)' of '\(id)' is not in the cached snapshot \(folder)"
                    + (available.isEmpty ? "" : " (cached: \(available.joined(separator: ", ")))")
            }
            return "the cached snapshot of '\(id)' at \(folder) holds several GGUF files (\(available.joined(separator: ", "))): choose one"
        }
    }

    public var errorDescription: String? { description }
}

/// The HuggingFace hub cache layout, read-only:
///
///     <root>/models--org--name/refs/<revision>          (holds the commit hash)
///     <root>/models--org--name/snapshots/<commit>/<file> (symlinks into ../../blobs)
///     <root>/models--org--name/blobs/<etag>
///
/// `root` is, in order: an explicit cache folder, `$HF_HUB_CACHE`, `$HUGGINGFACE_HUB_CACHE`,
/// `$HF_HOME/hub`, `$XDG_CACHE_HOME/huggingface/hub`, `~/.cache/huggingface/hub`.
/// The same layout is written by `huggingface_hub` and by `flexserve download`, so each finds the other's files.
public struct HubCache: Sendable, Equatable {
    public let root: URL

    public init(root: URL) {
        self.root = root.standardizedFileURL
    }

    /// The cache at `cacheFolder` if given, else the one the environment names.
    public init(cacheFolder: String? = nil, environment: [String: String] = ProcessInfo.processInfo.environment) {
        if let cacheFolder, !cacheFolder.isEmpty {
            self.init(root: URL(fileURLWithPath: HubCache.expandTilde(cacheFolder, environment: environment), isDirectory: true))
        } else {
            self.init(root: HubCache.defaultRoot(environment: environment))
        }
    }

    /// The default hub cache folder for this environment.
    public static func defaultRoot(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        func nonEmpty(_ k: String) -> String? {
            guard let v = environment[k], !v.isEmpty else { return nil }
            return expandTilde(v, environment: environment)
        }
        if let p = nonEmpty("HF_HUB_CACHE") ?? nonEmpty("HUGGINGFACE_HUB_CACHE") {
            return URL(fileURLWithPath: p, isDirectory: true)
        }
        return URL(fileURLWithPath: hfHome(environment: environment), isDirectory: true).appendingPathComponent("hub", isDirectory: true)
    }

    /// `$HF_HOME`, else `$XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface` (also where HF keeps its `token` file).
    public static func hfHome(environment: [String: String] = ProcessInfo.processInfo.environment) -> String {
        if let h = environment["HF_HOME"], !h.isEmpty { return expandTilde(h, environment: environment) }
        if let x = environment["XDG_CACHE_HOME"], !x.isEmpty { return expandTilde(x, environment: environment) + "/huggingface" }
        return homeDirectory(environment) + "/.cache/huggingface"
    }

    static func homeDirectory(_ environment: [String: String]) -> String {
        if let h = environment["HOME"], !h.isEmpty { return h }
        return FileManager.default.homeDirectoryForCurrentUser.path
    }

    static func expandTilde(_ path: String, environment: [String: String]) -> String {
        if path == "~" { return homeDirectory(environment) }
        if path.hasPrefix("~/") { return homeDirectory(environment) + String(path.dropFirst(1)) }
        return path
    }

    // MARK: ids and paths

    /// Whether `s` has the shape of a hub model id: "name" or "org/name" with letters, digits, '-', '_', '.'.
    public static func isRepoID(_ s: String) -> Bool {
        let parts = s.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 1 || parts.count == 2 else { return false }
        for p in parts {
            guard !p.isEmpty, p.count <= 96, p != ".", p != "..", !p.hasPrefix("-"), !p.hasSuffix("."), !p.contains("--"), !p.contains("..") else { return false }
            for u in p.unicodeScalars {
                let ok = (u >= "a" && u <= "z") || (u >= "A" && u <= "Z") || (u >= "0" && u <= "9") || u == "-" || u == "_" || u == "."
                if !ok { return false }
            }
        }
        return true
    }

    /// Whether `s` is a full 40-hex-digit commit hash.
    public static func isCommitHash(_ s: String) -> Bool {
        s.utf8.count == 40 && s.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 97 && $0 <= 102) }
    }

    /// `models--org--name`
    public static func repoFolderName(_ id: String) -> String {
        "models--" + id.split(separator: "/").joined(separator: "--")
    }

    public func repoFolder(_ id: String) -> URL {
        root.appendingPathComponent(HubCache.repoFolderName(id), isDirectory: true)
    }

    public func blobsFolder(_ id: String) -> URL { repoFolder(id).appendingPathComponent("blobs", isDirectory: true) }

    public func refFile(_ id: String, revision: String) -> URL {
        repoFolder(id).appendingPathComponent("refs", isDirectory: true).appendingPathComponent(revision)
    }

    public func snapshotFolder(_ id: String, commit: String) -> URL {
        repoFolder(id).appendingPathComponent("snapshots", isDirectory: true).appendingPathComponent(commit, isDirectory: true)
    }

    /// The commit that `revision` stands for in the cache: the revision itself when it is a commit hash
    /// with a snapshot folder, else the content of `refs/<revision>`; nil when unknown.
    public func commit(_ id: String, revision: String = "main") -> String? {
        let fm = FileManager.default
        if HubCache.isCommitHash(revision), fm.fileExists(atPath: snapshotFolder(id, commit: revision).path) { return revision }
        guard let data = fm.contents(atPath: refFile(id, revision: revision).path),
              let text = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
              !text.isEmpty else { return nil }
        return text
    }

    /// The snapshot folder of `id` at `revision`. Throws `notInCache` when the cache doesn't know it.
    public func snapshot(_ id: String, revision: String = "main") throws -> URL {
        guard HubCache.isRepoID(id) else { throw HubCacheError.invalidRepoID(id) }
        guard let c = commit(id, revision: revision) else {
            throw HubCacheError.notInCache(id: id, revision: revision, cacheRoot: root.path)
        }
        let folder = snapshotFolder(id, commit: c)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder.path, isDirectory: &isDir), isDir.boolValue else {
            throw HubCacheError.notInCache(id: id, revision: revision, cacheRoot: root.path)
        }
        return folder
    }

    // MARK: what a snapshot holds

    /// Relative paths of the regular files (symlinks followed, dangling ones skipped) in a snapshot folder, sorted.
    public static func files(in folder: URL) -> [String] {
        let fm = FileManager.default
        guard let e = fm.enumerator(atPath: folder.path) else { return [] }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            var isDir: ObjCBool = false
            if fm.fileExists(atPath: folder.appendingPathComponent(rel).path, isDirectory: &isDir), !isDir.boolValue {
                out.append(rel)
            }
        }
        return out.sorted()
    }

    /// The files of `folder` that serving still needs, or [] when it is complete:
    /// with `ggufFile`, that file; otherwise config.json and its weights (the shards the
    /// safetensors index names, or some *.safetensors), or else exactly one .gguf file.
    public static func missingServingFiles(in folder: URL, ggufFile: String? = nil) -> [String] {
        let fm = FileManager.default
        func has(_ rel: String) -> Bool {
            var isDir: ObjCBool = false
            return fm.fileExists(atPath: folder.appendingPathComponent(rel).path, isDirectory: &isDir) && !isDir.boolValue
        }
        if let ggufFile { return has(ggufFile) ? [] : [ggufFile] }
        let all = files(in: folder)
        let rootFiles = all.filter { !$0.contains("/") }
        if has("config.json") {
            if has("model.safetensors.index.json") {
                guard let data = fm.contents(atPath: folder.appendingPathComponent("model.safetensors.index.json").path),
                      let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
                      let map = obj["weight_map"] as? [String: Any] else { return ["model.safetensors.index.json (unreadable)"] }
                let shards = Set(map.values.compactMap { $0 as? String }).sorted()
                return shards.filter { !has($0) }
            }
            if rootFiles.contains(where: { $0.hasSuffix(".safetensors") }) { return [] }
            if rootFiles.contains(where: { $0.hasSuffix(".gguf") }) { return [] }
            return ["*.safetensors"]
        }
        let ggufs = all.filter { $0.hasSuffix(".gguf") }
        if ggufs.count == 1 { return [] }
        return ggufs.isEmpty ? ["config.json"] : ["a choice among " + ggufs.joined(separator: ", ")]
    }

    /// A snapshot with everything serving needs, or nil. Makes no request.
    public func completeSnapshot(_ id: String, revision: String = "main", ggufFile: String? = nil) -> URL? {
        guard let folder = try? snapshot(id, revision: revision) else { return nil }
        return HubCache.missingServingFiles(in: folder, ggufFile: ggufFile).isEmpty ? folder : nil
    }

    // MARK: the entry point of the core library

    /// Resolves what a user passed as a model: an existing file or folder is returned as is; a hub id
    /// ("org/name") is looked up in the cache and its snapshot folder returned — or, for a GGUF-only
    /// snapshot (or when `ggufFile` is given), the .gguf file in it. Throws a descriptive
    /// `HubCacheError` when the model is not cached. Never touches the network.
    public static func resolveModel(
        _ idOrPath: String, revision: String? = nil, cacheFolder: String? = nil, ggufFile: String? = nil,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> URL {
        let expanded = expandTilde(idOrPath, environment: environment)
        if FileManager.default.fileExists(atPath: expanded) {
            return URL(fileURLWithPath: expanded)
        }
        guard isRepoID(idOrPath) else { throw HubCacheError.invalidRepoID(idOrPath) }
        let cache = HubCache(cacheFolder: cacheFolder, environment: environment)
        return try cache.resolve(idOrPath, revision: revision ?? "main", ggufFile: ggufFile)
    }

    /// The snapshot folder (or .gguf file) of a cached model; see `resolveModel`.
    public func resolve(_ id: String, revision: String = "main", ggufFile: String? = nil) throws -> URL {
        let folder = try snapshot(id, revision: revision)
        let all = HubCache.files(in: folder)
        let ggufs = all.filter { $0.hasSuffix(".gguf") }
        if let ggufFile {
            guard all.contains(ggufFile) else {
                throw HubCacheError.ggufNotInSnapshot(id: id, folder: folder.path, requested: ggufFile, available: ggufs)
            }
            return folder.appendingPathComponent(ggufFile)
        }
        let missing = HubCache.missingServingFiles(in: folder)
        if !all.contains("config.json") {
            if ggufs.count == 1 { return folder.appendingPathComponent(ggufs[0]) }
            if ggufs.count > 1 { throw HubCacheError.ggufNotInSnapshot(id: id, folder: folder.path, requested: nil, available: ggufs) }
        }
        guard missing.isEmpty else {
            throw HubCacheError.incompleteSnapshot(id: id, revision: revision, folder: folder.path, missing: missing)
        }
        return folder
    }
}
