/// FlexFlow's `spec_infer` and `incr_decoding` take the Legion runtime's flags on the same command line
/// (`-ll:gpu 1 -ll:cpu 4 -ll:fsize 14000 -ll:zsize 30000 -lg:eager_alloc_percentage 30`): they size that runtime's
/// processors and memories, which FlexServe does not have. They are taken out before parsing and named in a note, so
/// FlexFlow's documented command lines run as they are; everything else is parsed as usual, an unknown option still
/// an error.
enum FlexFlowArguments {
    /// Legion's, Realm's and their modules' flag prefixes, and their logging flags.
    static let runtimePrefixes = ["-ll:", "-lg:", "-hl:", "-dm:", "-cuda:"]
    static let runtimeFlags: Set<String> = ["-logfile", "-level"]

    /// The subcommands that stand in for FlexFlow's programs.
    static let commands: Set<String> = ["spec-infer", "incr-decoding"]

    static func isRuntimeFlag(_ argument: String) -> Bool {
        runtimeFlags.contains(argument) || runtimePrefixes.contains { argument.hasPrefix($0) }
    }

    /// `arguments` (the subcommand first) without the runtime flags, and those flags, each with its value: the next
    /// argument unless that is an option itself (`-ll:force_kthreads` takes none). Other commands pass unchanged.
    static func separate(_ arguments: [String]) -> (arguments: [String], runtime: [String]) {
        guard let command = arguments.first, commands.contains(command) else { return (arguments, []) }
        var kept = [command], runtime: [String] = []
        var i = 1
        while i < arguments.count {
            let argument = arguments[i]
            if argument == "--" {
                kept += arguments[i...]
                break
            }
            if isRuntimeFlag(argument) {
                runtime.append(argument)
                if i + 1 < arguments.count, !arguments[i + 1].hasPrefix("-") {
                    runtime.append(arguments[i + 1])
                    i += 1
                }
            } else {
                kept.append(argument)
            }
            i += 1
        }
        return (kept, runtime)
    }
}
