import ArgumentParser
import FlexServe
import FlexServeHub
import Foundation

/// `flexserve download ID... [--revision R] [--cache-folder DIR] [--gguf-file NAME] [--force]`
struct DownloadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "download",
        abstract: "Fetch models from a HuggingFace-compatible hub into the HuggingFace cache.",
        discussion: """
            Downloads what serving needs (config.json, generation_config.json, tokenizer files, \
            chat_template.jinja, and the safetensors weights, or the one GGUF file given by \
            --gguf-file), resuming partial files and checking sizes and sha256 checksums. Files go to \
            the HuggingFace cache layout (models--org--name/{blobs,snapshots,refs}) under --cache-folder, \
            else $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub, so models that HF \
            tools downloaded are used as they are. A model already complete in the cache makes no request.
            Environment: HF_ENDPOINT (default https://huggingface.co), HF_TOKEN (for gated or private \
            models), HF_HUB_OFFLINE=1 (cache only). Prints the local model path of each model on stdout.
            """)

    @Argument(help: "Model ids, like HuggingFaceTB/SmolLM2-135M-Instruct.")
    var ids: [String]

    @Option(help: "Branch, tag or commit hash.")
    var revision: String = "main"

    @Option(name: .customLong("cache-folder"), help: "Hub cache folder (default: $HF_HUB_CACHE or $HF_HOME/hub or ~/.cache/huggingface/hub).")
    var cacheFolder: String?

    @Option(name: .customLong("gguf-file"), help: "Download this GGUF file (path in the repository) instead of safetensors weights.")
    var ggufFile: String?

    @Flag(help: "Ask the hub even when the cache already holds a complete snapshot.")
    var force = false

    @Flag(name: .shortAndLong, help: "No progress output.")
    var quiet = false

    mutating func run() async throws {
        let config = HubConfiguration.fromEnvironment(cacheFolder: cacheFolder)
        let progress: HubProgressReporter? = quiet ? nil : TerminalProgress()
        let downloader = HubDownloader(configuration: config, progress: progress)
        var failed = false
        for id in ids {
            do {
                let r = try await downloader.download(id, revision: revision, ggufFile: ggufFile, force: force)
                if !quiet {
                    let what = r.fromCache
                        ? "already in the cache"
                        : "downloaded \(TerminalProgress.bytes(r.downloadedBytes))"
                    FileHandle.standardError.write(Data("\(id)@\(r.commit.prefix(12)): \(what)\n".utf8))
                }
                print(r.modelPath.path)
            } catch {
                failed = true
                FileHandle.standardError.write(Data("error: \(id): \(error)\n".utf8))
            }
        }
        try? await downloader.shutdown()
        if failed { throw ExitCode.failure }
    }
}
