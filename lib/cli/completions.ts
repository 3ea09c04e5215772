/**
 * `ferry completions bash|zsh|fish`: completion scripts generated from the command specs.
 *
 * @module
 */
import { UsageError } from "../errors.ts";
import { type CommandSpec, HELP_OPTION } from "./args.ts";
import { COMMANDS } from "./specs.ts";

function flagsOf(spec: CommandSpec): string[] {
  return [...spec.options, HELP_OPTION].flatMap((option) =>
    option.short ? [`--${option.name}`, `-${option.short}`] : [`--${option.name}`]
  );
}

function bash(): string {
  const names = COMMANDS.map((spec) => spec.name).join(" ");
  const cases = COMMANDS.map((spec) => `    ${spec.name}) opts="${flagsOf(spec).join(" ")}" ;;`)
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

function zsh(): string {
  const commands = COMMANDS.map((spec) => `    '${spec.name}:${spec.summary.replace(/'/g, "")}'`)
    .join("\n");
  const cases = COMMANDS.map((spec) => {
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

function fish(): string {
  const lines = ["# fish completion for ferry; load with: ferry completions fish | source"];
  lines.push("complete -c ferry -f");
  for (const spec of COMMANDS) {
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

/** The completion script for `shell`. Throws a usage error for an unknown shell. */
export function completionScript(shell: string): string {
  switch (shell) {
    case "bash":
      return bash();
    case "zsh":
      return zsh();
    case "fish":
      return fish();
    default:
      throw new UsageError(`Unknown shell "${shell}": expected bash, zsh or fish`);
  }
}
