/**
 * `ferry completions bash|zsh|fish`: completion scripts generated from the command specs.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { type Command, type CommandSpec, HELP_OPTION, type ParsedCommand } from "./args.ts";
import { printLine } from "./output.ts";

/** What `ferry completions` accepts. */
export const completionsSpec = {
  name: "completions",
  summary: "Print a shell completion script",
  usage: "completions bash|zsh|fish",
  description:
    "Prints a completion script for your shell. For bash: source <(ferry completions bash).",
  args: [{ name: "SHELL", description: "bash, zsh or fish" }],
  options: [],
  minArgs: 1,
  maxArgs: 1,
  examples: [["source <(ferry completions bash)", "complete ferry's commands and flags in bash"]],
} as const satisfies CommandSpec;

function flagsOf(spec: CommandSpec): string[] {
  return [...spec.options, HELP_OPTION].flatMap((option) =>
    option.short ? [`--${option.name}`, `-${option.short}`] : [`--${option.name}`]
  );
}

function bash(specs: readonly CommandSpec[]): string {
  const names = specs.map((spec) => spec.name).join(" ");
  const cases = specs.map((spec) => `    ${spec.name}) opts="${flagsOf(spec).join(" ")}" ;;`)
    .join("\n");
  return `# bash completion for ferry; load with: source <(ferry completions bash)
_ferry() {
  local cur opts
  cur="\${COMP_WORDS[COMP_CWORD]}"
  if [ "\$COMP_CWORD" -eq 1 ]; then
    COMPREPLY=( $(compgen -W "${names} --help --version" -- "\$cur") )
    return 0
  fi
  case "\${COMP_WORDS[1]}" in
${cases}
    *) opts="" ;;
  esac
  if [[ "\$cur" == -* ]]; then
    COMPREPLY=( $(compgen -W "\$opts" -- "\$cur") )
  else
    COMPREPLY=( $(compgen -f -- "\$cur") )
  fi
  return 0
}
complete -o filenames -F _ferry ferry
`;
}

function zsh(specs: readonly CommandSpec[]): string {
  const commands = specs.map((spec) => `    '${spec.name}:${spec.summary.replace(/'/g, "")}'`)
    .join("\n");
  const cases = specs.map((spec) => {
    const options = [...spec.options, HELP_OPTION].map((option) =>
      `'--${option.name}[${option.description.replace(/['\[\]]/g, "")}]${
        option.type === "string" ? `:${(option.value ?? "value").toLowerCase()}:_files` : ""
      }'`
    ).join(" ");
    return `    ${spec.name}) _arguments ${options} '*:file:_files' ;;`;
  }).join("\n");
  return `#compdef ferry
# zsh completion for ferry; load with: source <(ferry completions zsh)
_ferry() {
  local -a commands
  commands=(
${commands}
  )
  if (( CURRENT == 2 )); then
    _describe 'command' commands
    return
  fi
  case \$words[2] in
${cases}
  esac
}
compdef _ferry ferry
`;
}

function fish(specs: readonly CommandSpec[]): string {
  const lines = ["# fish completion for ferry; load with: ferry completions fish | source"];
  lines.push("complete -c ferry -f");
  for (const spec of specs) {
    lines.push(
      `complete -c ferry -n __fish_use_subcommand -a ${spec.name} -d '${
        spec.summary.replace(/'/g, "")
      }'`,
    );
    for (const option of [...spec.options, HELP_OPTION]) {
      const short = option.short ? ` -s ${option.short}` : "";
      const takes = option.type === "string" ? " -r" : "";
      lines.push(
        `complete -c ferry -n '__fish_seen_subcommand_from ${spec.name}' -l ${option.name}${short}${takes} -d '${
          option.description.replace(/'/g, "")
        }'`,
      );
    }
  }
  return lines.join("\n") + "\n";
}

/** The completion script for `shell`, completing `specs`. Throws a usage error for an unknown shell. */
export function completionScript(shell: string, specs: readonly CommandSpec[]): string {
  switch (shell) {
    case "bash":
      return bash(specs);
    case "zsh":
      return zsh(specs);
    case "fish":
      return fish(specs);
    default:
      throw new UsageError(`Unknown shell "${shell}": expected bash, zsh or fish`);
  }
}

/**
 * `ferry completions`, completing the commands `commands()` returns (a function, so that the
 * table can list this command too).
 */
export function completionsCommand(
  commands: () => readonly Command[],
): Command<typeof completionsSpec> {
  return {
    spec: completionsSpec,
    run({ positionals }: ParsedCommand<typeof completionsSpec>) {
      const specs = commands().map((command) => command.spec);
      printLine(completionScript(positionals[0]!, specs).trimEnd());
      return Promise.resolve();
    },
  };
}
