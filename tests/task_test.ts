/**
 * `deno task serve` and `deno task ferry` (issue 13, item 2): ferry runs in the folder the person
 * ran the task from, shares and saves there, finds the code there, and gets Deno permissions for
 * exactly the folders, files and address its command line names. Run through `deno task` itself,
 * from folders other than the checkout, as the README tells people to.
 */
import assert from "node:assert/strict";
import { basename, join } from "node:path";
import { planTaskRun, type TaskContext } from "../scripts/task.ts";
import { DEFAULT_TOKEN_FILE } from "../lib/relay/wire.ts";
import { DENO, exists, tempDir } from "./_helpers.ts";
import { CHECKOUT, denoTask, environmentWithout, startListening } from "./_launch.ts";

/** A port nothing listens on right now (the system's choice for port 0, released at once). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

Deno.test("deno task serve, run in a folder, shares that folder; deno task ferry, run in another, saves the code and the files there", async () => {
  await using share = await tempDir();
  await using receive = await tempDir();
  await using elsewhere = await tempDir();
  await Deno.writeTextFile(join(share.path, "notes.txt"), "shared notes\n");
  await Deno.writeTextFile(join(receive.path, "local.txt"), "from the receiver\n");

  await using server = await startListening(
    DENO,
    ["task", "-q", "--config", join(CHECKOUT, "deno.json"), "serve", "--host=127.0.0.1", "-p", "0"],
    { cwd: share.path, env: environmentWithout("INIT_CWD") },
  );
  assert.match(server.log(), /Serving \. on 127\.0\.0\.1:\d+ /);
  const codeFile = join(share.path, ".connection_code");
  assert.ok(await exists(codeFile), "the new code is kept in the shared folder, where serve ran");

  const saved = await denoTask(
    ["ferry", "code", "--save"],
    receive.path,
    await Deno.readTextFile(codeFile),
  );
  assert.equal(saved.code, 0, saved.stderr);
  assert.equal(
    (await Deno.readTextFile(join(receive.path, ".connection_code"))).trim(),
    (await Deno.readTextFile(codeFile)).trim(),
    "ferry code --save writes the code where the person stands",
  );

  const listed = await denoTask(["ferry", "ls", server.address], receive.path);
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /notes\.txt/);
  assert.doesNotMatch(listed.stdout, /connection_code/);

  const got = await denoTask(["ferry", "get", server.address, "notes.txt"], receive.path);
  assert.equal(got.code, 0, got.stderr);
  assert.equal(await Deno.readTextFile(join(receive.path, "notes.txt")), "shared notes\n");

  const relative = await denoTask(
    ["ferry", "get", server.address, "notes.txt", "-o", "inbox/today"],
    receive.path,
  );
  assert.equal(relative.code, 0, relative.stderr);
  assert.ok(await exists(join(receive.path, "inbox", "today", "notes.txt")), "-o from here");

  const outside = await denoTask(
    ["ferry", "get", server.address, "notes.txt", "-o", elsewhere.path],
    receive.path,
  );
  assert.equal(outside.code, 0, outside.stderr);
  assert.ok(await exists(join(elsewhere.path, "notes.txt")), "a folder outside both is granted");

  const renamed = await denoTask(
    [
      "ferry",
      "get",
      server.address,
      "notes.txt",
      "--as",
      join("..", basename(elsewhere.path), "c"),
    ],
    receive.path,
  );
  assert.equal(renamed.code, 0, renamed.stderr);
  assert.ok(await exists(join(elsewhere.path, "c")), "--as resolves from here");

  const put = await denoTask(["ferry", "put", server.address, "local.txt"], receive.path);
  assert.equal(put.code, 0, put.stderr);
  assert.equal(
    await Deno.readTextFile(join(share.path, "uploaded_local.txt")),
    "from the receiver\n",
  );

  const codeFromHere = await denoTask(
    [
      "ferry",
      "ls",
      server.address,
      "--code-file",
      join("..", basename(receive.path), ".connection_code"),
    ],
    elsewhere.path,
  );
  assert.equal(codeFromHere.code, 0, codeFromHere.stderr);
  assert.match(codeFromHere.stdout, /notes\.txt/, "--code-file resolves from here");

  const status = await server.stop();
  assert.equal(status.code, 0, server.log());
  assert.match(server.log(), /Server stopped\./, "SIGTERM reaches ferry through deno task");
});

Deno.test("deno task serve with no folder, run in the checkout, refuses to share the checkout and says how to share a folder", async () => {
  const hadCode = await exists(join(CHECKOUT, ".connection_code"));
  const result = await denoTask(["serve", "--host", "127.0.0.1", "--port", "0"], CHECKOUT);
  assert.equal(result.code, 2);
  assert.match(result.stderr, /^ferry: Not sharing ferry's own checkout/);
  assert.match(result.stderr, /deno task serve ~\/Public/);
  assert.doesNotMatch(result.stderr, /Serving/);
  assert.equal(await exists(join(CHECKOUT, ".connection_code")), hadCode, "no code file made");
});

Deno.test("deno task serve DIR --port N, run in the checkout, shares DIR on port N", async () => {
  await using share = await tempDir();
  await using codes = await tempDir();
  await Deno.writeTextFile(join(share.path, "a.txt"), "a");
  const codeFile = join(codes.path, "code");
  const port = freePort();
  await using server = await startListening(
    DENO,
    ["task", "-q", "--config", join(CHECKOUT, "deno.json"), "serve", share.path, "--host"]
      .concat(["127.0.0.1", "--port", String(port), "--code-file", codeFile]),
    { cwd: CHECKOUT, env: environmentWithout("INIT_CWD") },
  );
  assert.equal(server.address, `127.0.0.1:${port}`);
  const listed = await denoTask(
    ["ferry", "ls", server.address, "--code-file", codeFile],
    codes.path,
  );
  assert.equal(listed.code, 0, listed.stderr);
  assert.match(listed.stdout, /a\.txt/);
});

/** A context in `/home/ann/Public`, with the checkout at `/home/ann/ferry`. */
function context(existing: string[] = ["/home/ann/Public/.connection_code"]): TaskContext {
  return {
    here: "/home/ann/Public",
    checkout: "/home/ann/ferry",
    exists: (path) => existing.includes(path),
  };
}

Deno.test("planTaskRun() grants serve its folder, its code file and its folder (the named codes), its address, its announcements, and nothing else", () => {
  assert.deepEqual(planTaskRun(["serve"], context()), {
    permissions: [
      // TCP, then the announcements' UDP port (the same 0.0.0.0:7878) and multicast group.
      "--allow-net=0.0.0.0:7878,239.255.78.78:7878",
      "--allow-read=/home/ann/Public,/home/ann/Public/.connection_code",
      "--allow-write=/home/ann/Public",
      "--allow-sys=networkInterfaces",
    ],
  });
  assert.deepEqual(planTaskRun(["serve", "-p", "9000", "--no-announce"], context()), {
    permissions: [
      "--allow-net=0.0.0.0:9000",
      "--allow-read=/home/ann/Public,/home/ann/Public/.connection_code",
      "--allow-write=/home/ann/Public",
    ],
  });
  assert.deepEqual(planTaskRun(["serve", "-p", "9000", "--host", "192.168.1.20"], context()), {
    permissions: [
      "--allow-net=192.168.1.20:9000,0.0.0.0:7878,239.255.78.78:7878",
      "--allow-read=/home/ann/Public,/home/ann/Public/.connection_code",
      "--allow-write=/home/ann/Public",
      "--allow-sys=networkInterfaces",
    ],
  });
  // Listening on loopback (or one IPv6 address), the server announces nothing.
  assert.deepEqual(
    planTaskRun(["serve", "../Shared", "--read-only", "-p", "9000", "--host", "::1"], context()),
    {
      permissions: [
        "--allow-net=[::1]:9000",
        "--allow-read=/home/ann/Shared,/home/ann/Public/.connection_code,/home/ann/Public",
      ],
    },
  );
});

Deno.test("planTaskRun() lets serve create a missing code file (a temporary file beside it)", () => {
  assert.deepEqual(
    planTaskRun(
      ["serve", "/srv/share", "--code-file", "codes/ferry", "--no-announce"],
      context([]),
    ),
    {
      permissions: [
        "--allow-net=0.0.0.0:7878",
        "--allow-read=/srv/share,/home/ann/Public/codes/ferry,/home/ann/Public/codes",
        "--allow-write=/srv/share,/home/ann/Public/codes",
      ],
    },
  );
});

Deno.test("planTaskRun() grants serve --relay the relay's address and its token file, ./.relay_token by default", () => {
  assert.deepEqual(
    planTaskRun(["serve", "--no-announce", "--relay", "relay.example.org"], context()),
    {
      permissions: [
        "--allow-net=0.0.0.0:7878,relay.example.org:7879",
        `--allow-read=/home/ann/Public,/home/ann/Public/.connection_code,/home/ann/Public/${DEFAULT_TOKEN_FILE}`,
        "--allow-write=/home/ann/Public",
      ],
    },
  );
  assert.deepEqual(
    planTaskRun([
      "serve",
      "--host",
      "127.0.0.1",
      "--relay",
      "[2001:db8::7]:443",
      "--relay-token-file",
      "../keys/relay",
    ], context()),
    {
      permissions: [
        "--allow-net=127.0.0.1:7878,[2001:db8::7]:443",
        "--allow-read=/home/ann/Public,/home/ann/Public/.connection_code,/home/ann/keys/relay",
        "--allow-write=/home/ann/Public",
      ],
    },
  );
});

Deno.test("planTaskRun() gives a client given @ the whole network (the server's address is learnt on the way) and the network interfaces", () => {
  const code = "/home/ann/Public/.connection_code";
  for (
    const args of [
      ["ls", "@"],
      ["ls", "@", "--relay", "relay.example.org"],
      ["connect", "@", "--relay=relay.example.org:443"],
    ]
  ) {
    const plan = planTaskRun(args, context());
    assert.ok("permissions" in plan);
    assert.equal(plan.permissions[0], "--allow-net", args.join(" "));
    assert.equal(plan.permissions.at(-1), "--allow-sys=networkInterfaces", args.join(" "));
  }
  assert.deepEqual(planTaskRun(["get", "@", "a.txt"], context()), {
    permissions: [
      "--allow-net",
      `--allow-read=${code},/home/ann/Public`,
      "--allow-write=/home/ann/Public",
      "--allow-sys=networkInterfaces",
    ],
  });
  // --relay with an address is ferry's usage error, shown as ferry words it.
  assert.deepEqual(planTaskRun(["ls", "host.lan", "--relay", "r"], context()), {
    permissions: [],
  });
});

Deno.test("planTaskRun() gives each client command the server's address, the code file and its local paths", () => {
  const code = "/home/ann/Public/.connection_code";
  assert.deepEqual(planTaskRun(["ls", "host.lan:9000"], context()), {
    permissions: ["--allow-net=host.lan:9000", `--allow-read=${code}`],
  });
  assert.deepEqual(planTaskRun(["get", "[::1]", "a", "-o", "../Downloads"], context()), {
    permissions: [
      "--allow-net=[::1]:7878",
      `--allow-read=${code},/home/ann/Downloads`,
      "--allow-write=/home/ann/Downloads",
    ],
  });
  assert.deepEqual(planTaskRun(["get", "h", "a", "--as", "/tmp/b/c.txt"], context()), {
    permissions: ["--allow-net=h:7878", `--allow-read=${code},/tmp/b`, "--allow-write=/tmp/b"],
  });
  assert.deepEqual(planTaskRun(["put", "h", "x.txt", "/srv/y", "--to", "in"], context()), {
    permissions: ["--allow-net=h:7878", `--allow-read=${code},/home/ann/Public/x.txt,/srv/y`],
  });
  assert.deepEqual(planTaskRun(["connect", "h", "--code-file", "/keys/c"], context()), {
    permissions: [
      "--allow-net=h:7878",
      "--allow-read=/keys/c,/home/ann/Public",
      "--allow-write=/home/ann/Public",
    ],
  });
  assert.deepEqual(planTaskRun(["code", "--save", "--file", "../k/code"], context()), {
    permissions: ["--allow-read=/home/ann/k", "--allow-write=/home/ann/k"],
  });
});

Deno.test("planTaskRun() grants nothing to a command line ferry will refuse, so ferry's own message is shown", () => {
  for (
    const args of [[], ["--version"], ["serv"], ["get", "h"], ["ls", "http://h"], ["ls", "-x", "h"]]
  ) {
    assert.deepEqual(planTaskRun(args, context()), { permissions: [] }, args.join(" "));
  }
  assert.deepEqual(planTaskRun(["get", "--help"], context()), { permissions: [] });
});

Deno.test("planTaskRun() refuses serve with no folder in the checkout, and a path Deno's flags cannot name", () => {
  const inCheckout = { ...context(), here: "/home/ann/ferry" };
  const refused = planTaskRun(["serve"], inCheckout);
  assert.ok("refusal" in refused);
  assert.match(refused.refusal, /ferry's own checkout/);
  assert.deepEqual(planTaskRun(["serve", ".", "--no-announce"], inCheckout), {
    permissions: [
      "--allow-net=0.0.0.0:7878",
      "--allow-read=/home/ann/ferry,/home/ann/ferry/.connection_code",
      "--allow-write=/home/ann/ferry",
    ],
  });
  const comma = planTaskRun(["get", "h", "a", "-o", "x,y"], context());
  assert.ok("refusal" in comma);
  assert.match(comma.refusal, /\/home\/ann\/Public\/x,y.*commas/);
});

Deno.test("planTaskRun() grants relay its address and its token file, and its folder only to create the file", () => {
  assert.deepEqual(
    planTaskRun(["relay", "--port", "7900"], context([`/home/ann/Public/${DEFAULT_TOKEN_FILE}`])),
    {
      permissions: [
        "--allow-net=0.0.0.0:7900",
        `--allow-read=/home/ann/Public/${DEFAULT_TOKEN_FILE}`,
      ],
    },
  );
  assert.deepEqual(planTaskRun(["relay", "--token-file", "keys/relay"], context([])), {
    permissions: [
      "--allow-net=0.0.0.0:7879",
      "--allow-read=/home/ann/Public/keys/relay,/home/ann/Public/keys",
      "--allow-write=/home/ann/Public/keys",
    ],
  });
});
