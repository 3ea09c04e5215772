/**
 * ferry as a Deno citizen (issue 6): narrow permissions with helpful messages when one is
 * missing, completion scripts a shell can load, and one source for the version.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { VERSION } from "../lib/version.ts";
import { WIRE_ERROR_CODES } from "../lib/protocol/wire_errors.ts";
import { DENO, MAIN, runFerry, startServe, tempDir } from "./_helpers.ts";

/** A message a person can act on: names the missing flag, one line, no stack trace. */
function assertPermissionHint(stderr: string, flag: RegExp): void {
  assert.match(stderr, /Permission denied/);
  assert.match(stderr, flag);
  assert.doesNotMatch(stderr, /\n\s+at /, "no stack trace");
  assert.equal(stderr.trim().split("\n").length, 1, `one line, got: ${stderr}`);
}

Deno.test("permissions: each command with a permission missing says which flag to add", async (t) => {
  await using served = await tempDir();
  await using out = await tempDir();
  await Deno.writeTextFile(join(served.path, "a.txt"), "a");
  await using server = await startServe(served.path);
  const code = server.codeFile;

  await t.step("serve without --allow-write names --allow-write=<folder>", async () => {
    const result = await runFerry(
      ["serve", served.path, "--host", "127.0.0.1", "--port", "0", "--code-file", code],
      { permissions: ["--allow-net=127.0.0.1:0", `--allow-read=${served.path},${code}`] },
    );
    assert.equal(result.code, 1);
    assertPermissionHint(result.stderr, new RegExp(`--allow-write=${served.path}`));
  });

  await t.step("serve --read-only needs no write permission", async () => {
    await using readOnly = await startServe(served.path, {
      codeFile: code,
      permissions: ["--allow-net=127.0.0.1:0", `--allow-read=${served.path},${code}`],
      args: ["--read-only"],
    });
    assert.match(readOnly.log(), /Serving .* \(read-only\)/);
  });

  await t.step("serve without --allow-net names the address", async () => {
    const result = await runFerry(
      ["serve", served.path, "--host", "127.0.0.1", "--port", "0", "--code-file", code],
      { permissions: [`--allow-read=${served.path},${code}`, `--allow-write=${served.path}`] },
    );
    assert.equal(result.code, 1);
    assertPermissionHint(result.stderr, /--allow-net=127\.0\.0\.1:0/);
  });

  await t.step("ls without --allow-net names host:port", async () => {
    const result = await runFerry(["ls", server.address, "--code-file", code], {
      permissions: [`--allow-read=${code}`],
    });
    assert.equal(result.code, 1);
    assertPermissionHint(result.stderr, new RegExp(`--allow-net=${server.address}`));
  });

  await t.step("ls without read access to the code file names it", async () => {
    const result = await runFerry(["ls", server.address, "--code-file", code], {
      permissions: [`--allow-net=${server.address}`],
    });
    assert.equal(result.code, 1);
    assertPermissionHint(result.stderr, new RegExp(`--allow-read=${code}`));
  });

  await t.step("get without --allow-write names the output folder", async () => {
    const result = await runFerry(
      ["get", server.address, "a.txt", "-o", out.path, "--code-file", code],
      { permissions: [`--allow-net=${server.address}`, `--allow-read=${out.path},${code}`] },
    );
    assert.equal(result.code, 1);
    assertPermissionHint(result.stderr, /--allow-write=/);
  });

  await t.step("put without read access to the local file names it", async () => {
    const local = join(out.path, "up.txt");
    await Deno.writeTextFile(local, "up");
    const result = await runFerry(["put", server.address, local, "--code-file", code], {
      permissions: [`--allow-net=${server.address}`, `--allow-read=${code}`],
    });
    assert.equal(result.code, 1);
    assertPermissionHint(result.stderr, new RegExp(`--allow-read=${local}`));
  });

  await t.step("code without --allow-write names the code file", async () => {
    const target = join(out.path, "new-code");
    const result = await runFerry(["code", "--file", target], {
      permissions: [`--allow-read=${out.path}`],
    });
    assert.equal(result.code, 1);
    assertPermissionHint(result.stderr, /--allow-write=/);
  });
});

Deno.test("`ferry completions bash` prints a script bash can source", async () => {
  const result = await runFerry(["completions", "bash"]);
  assert.equal(result.code, 0, result.stderr);
  await using dir = await tempDir();
  const script = join(dir.path, "ferry.bash");
  await Deno.writeTextFile(script, result.stdout);
  const check = await new Deno.Command("bash", {
    args: [
      "-c",
      `source ${script} && complete -p ferry && COMP_WORDS=(ferry ge) COMP_CWORD=1 && _ferry && echo "\${COMPREPLY[@]}" && COMP_WORDS=(ferry get --fo) COMP_CWORD=2 && _ferry && echo "\${COMPREPLY[@]}"`,
    ],
  }).output();
  const stdout = new TextDecoder().decode(check.stdout);
  assert.equal(check.code, 0, new TextDecoder().decode(check.stderr));
  assert.match(stdout, /complete .*-F _ferry ferry/);
  assert.match(stdout, /^get$/m, "completes the command name");
  assert.match(stdout, /^--force$/m, "completes a flag of the command");
});

Deno.test("`ferry completions zsh|fish` print scripts naming every command", async () => {
  for (const shell of ["zsh", "fish"]) {
    const result = await runFerry(["completions", shell]);
    assert.equal(result.code, 0, result.stderr);
    for (const command of ["code", "serve", "ls", "get", "put", "connect"]) {
      assert.match(
        result.stdout,
        new RegExp(`\\b${command}\\b`),
        `${shell} script names ${command}`,
      );
    }
  }
  const unknown = await runFerry(["completions", "powershell"]);
  assert.equal(unknown.code, 2);
  assert.match(unknown.stderr, /bash, zsh or fish/);
});

Deno.test("the version is written once: deno.json and --version agree with lib/version.ts", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  assert.equal(config.version, VERSION);
  const result = await runFerry(["--version"]);
  assert.equal(result.stdout.trim(), `ferry ${VERSION}`);
});

Deno.test("main.ts's shebang lists narrow permission flags, not -A", async () => {
  const first = (await Deno.readTextFile(MAIN)).split("\n", 1)[0]!;
  assert.match(first, /^#!\/usr\/bin\/env -S deno run /);
  assert.doesNotMatch(first, / -A\b|--allow-all/);
  assert.match(first, /--allow-read=\.(\s|$)/);
  assert.match(first, /--allow-write=\.(\s|$)/);
  assert.match(first, /--allow-env=FERRY_CODE/);
});

Deno.test("`ferry ls | head -1` ends quietly with status 0 when the pipe closes early", async () => {
  await using served = await tempDir();
  for (let index = 0; index < 2000; index++) {
    await Deno.writeTextFile(join(served.path, `file-${index}.txt`), "x");
  }
  await using server = await startServe(served.path);
  const script = `set -o pipefail; '${DENO}' run -q -A '${MAIN}' ls ${server.address} ` +
    `--code-file '${server.codeFile}' | head -1`;
  const output = await new Deno.Command("bash", { args: ["-c", script] }).output();
  const stderr = new TextDecoder().decode(output.stderr);
  assert.equal(output.code, 0, stderr);
  assert.equal(stderr, "");
  assert.match(new TextDecoder().decode(output.stdout), /^file\s/);
});

Deno.test("README documents every `--json` event and every error code an error event can carry", async () => {
  const readme = await Deno.readTextFile(new URL("../README.md", import.meta.url));
  const section = readme.slice(readme.indexOf("### JSON output"), readme.indexOf("## Security"));
  assert.ok(section.length > 0, "the README has a JSON output section");
  const events = await Deno.readTextFile(new URL("../lib/client/events.ts", import.meta.url));
  const names = new Set([...events.matchAll(/event: "([\w-]+)"/g)].map((match) => match[1]!));
  for (const name of ["start", "progress", "done", "mkdir", "not-transferred"]) {
    assert.ok(names.has(name), `events.ts still declares ${name}`);
  }
  for (const name of [...names, "error"]) {
    assert.match(section, new RegExp("`" + name + "`"), `event ${name} is documented`);
  }
  for (const code of WIRE_ERROR_CODES) {
    assert.match(section, new RegExp("`" + code + "`"), `error code ${code} is documented`);
  }
});

/** The relay's fixed names and numbers, which `ferry relay --help` shows (no I/O, no crypto). */
const LIGHT_AT_START = ["relay/wire.ts", "net/identifier.ts"];

Deno.test("start-up loads the command table only: a command's runner, and the client, server, relay or store behind it, is imported when that command runs", async () => {
  const info = new Deno.Command(DENO, { args: ["info", "--json", MAIN], stdout: "piped" });
  const { success, stdout } = await info.output();
  assert.ok(success, "deno info --json main.ts");
  const graph = JSON.parse(new TextDecoder().decode(stdout)) as {
    modules: {
      specifier: string;
      dependencies?: { code?: { specifier: string }; isDynamic?: boolean }[];
    }[];
  };
  const bySpecifier = new Map(graph.modules.map((module) => [module.specifier, module]));
  const root = new URL(`file://${MAIN}`).href;
  const lib = new URL("lib/", root).href;
  const loadedAtStart = new Set<string>();
  const walk = (specifier: string) => {
    if (loadedAtStart.has(specifier)) return;
    loadedAtStart.add(specifier);
    for (const dependency of bySpecifier.get(specifier)?.dependencies ?? []) {
      if (dependency.code && !dependency.isDynamic) walk(dependency.code.specifier);
    }
  };
  walk(root);
  const heavy = [...loadedAtStart]
    .filter((specifier) => specifier.startsWith(lib))
    .map((specifier) => specifier.slice(lib.length))
    .filter((path) =>
      /^(client|server|store|net|relay|transfer)\//.test(path) &&
        !LIGHT_AT_START.includes(path) ||
      /^cli\/(code|connect|get|ls|put|relay|serve)\.ts$/.test(path)
    );
  assert.deepEqual(heavy, [], "modules loaded before any command runs");

  const commands = bySpecifier.get(new URL("cli/commands.ts", lib).href);
  const lazy = (commands?.dependencies ?? [])
    .filter((dependency) => dependency.isDynamic)
    .map((dependency) => dependency.code?.specifier.slice(lib.length))
    .sort();
  // Literal import() specifiers, so that `deno compile` and a run from a URL find every runner.
  assert.deepEqual(lazy, [
    "cli/code.ts",
    "cli/connect.ts",
    "cli/get.ts",
    "cli/ls.ts",
    "cli/put.ts",
    "cli/relay.ts",
    "cli/serve.ts",
  ]);
});
