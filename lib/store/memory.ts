/**
 * A served place kept in memory: {@link MemoryStore}, the {@link FileStore} for tests.
 *
 * It follows the rules of `LocalStore` where they do not depend on the disk: every path is
 * validated with {@link parseRemotePath}; names are listed by UTF-16 code units; uploads stay
 * hidden until committed and their kept bytes survive a cut for a resume; excluded paths are
 * neither listed, served nor written; the same errors come in the same cases. There are no
 * symbolic links, so {@link MemoryStore.targetKind} never says `link`. Needs no permission.
 *
 * @example
 * ```ts
 * import { MemoryStore } from "./memory.ts";
 * import { strictEqual } from "node:assert/strict";
 *
 * const store = new MemoryStore();
 * const upload = await store.beginUpload("docs/a.txt");
 * await upload.write(new TextEncoder().encode("hello"));
 * await upload.commit({ force: false });
 * strictEqual((await store.resolve("docs/a.txt")).size, 5);
 * ```
 *
 * @module
 */
import { ExistsError, IsFolderError, NotFoundError, PathError } from "../errors.ts";
import { MAX_PATH_BYTES, parseRemotePath, sanitizeForDisplay } from "../protocol/remote_path.ts";
import {
  describe,
  type MemoryFolder,
  type MemoryNode,
  MemoryPendingFile,
  MemoryStoredFile,
  newFolder,
} from "./_memory_files.ts";
import { settle } from "../_fs.ts";
import {
  type EntryInfo,
  type FileStore,
  hiddenPath,
  type PendingFile,
  type StoredFile,
  type TargetKind,
} from "./store.ts";

/** Options of {@link MemoryStore}. */
export interface MemoryStoreOptions {
  /** Remote paths never listed, served nor written (each also hides what lies below it). */
  exclude?: string[];
}

/** A {@link FileStore} in memory, empty when made. */
export class MemoryStore implements FileStore {
  #root: MemoryFolder = newFolder();
  #excluded: string[][];

  /** An empty store; `exclude` mirrors `LocalStore`'s exclusion of the code file. */
  constructor(options: MemoryStoreOptions = {}) {
    this.#excluded = (options.exclude ?? []).map((path) => parseRemotePath(path));
  }

  /**
   * Puts a file at `path` as a local user would, outside the {@link FileStore} rules: missing
   * folders are created, an existing file is replaced, and an excluded path is allowed (to plant
   * the code file). For setting up tests. {@link PathError} when a file stands above `path`,
   * {@link ExistsError} when a folder is at `path`.
   */
  writeFile(
    path: string,
    bytes: Uint8Array | string,
    options: { mtime?: number; mode?: number } = {},
  ) {
    const components = parseRemotePath(path);
    const name = components.pop();
    if (name === undefined) throw new PathError("Cannot write the served folder itself");
    const folder = this.#enterFolders(components, path, { create: true, allowExcluded: true });
    if (folder.children.get(name)?.kind === "dir") {
      throw new ExistsError(`${quote(path)} exists and is a folder`);
    }
    folder.children.set(name, {
      kind: "file",
      bytes: typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes.slice(),
      mtime: options.mtime ?? Date.now(),
      mode: (options.mode ?? 0o644) & 0o777,
    });
    folder.mtime = Date.now();
  }

  /** Describes the entry at `path` (see `FileStore.resolve`). */
  resolve(path: string): Promise<EntryInfo> {
    return settle(() => {
      const components = parseRemotePath(path);
      return describe(components.at(-1) ?? "", this.#lookup(components, path));
    });
  }

  /** The children of the folder at `path` in name order, or the file itself. */
  async *entries(path: string): AsyncIterable<EntryInfo> {
    const components = parseRemotePath(path);
    const node = this.#lookup(components, path);
    if (node.kind === "file") {
      yield describe(components.at(-1) ?? "", node);
      return;
    }
    for (const [name, child] of this.#visibleChildren(node, components)) {
      yield describe(name, child);
    }
  }

  /** Every file and folder below the folder at `path`, depth first in name order. */
  async *walk(path: string): AsyncIterable<EntryInfo & { path: string }> {
    const components = parseRemotePath(path);
    const node = this.#lookup(components, path);
    if (node.kind !== "dir") throw new PathError(`Cannot walk ${quote(path)}: it is not a folder`);
    const baseBytes = components.length === 0 ? 0 : utf8Length(components.join("/")) + 1;
    yield* this.#walkFolder(node, components, "", baseBytes);
  }

  *#walkFolder(
    folder: MemoryFolder,
    components: string[],
    relative: string,
    baseBytes: number,
  ): Iterable<EntryInfo & { path: string }> {
    for (const [name, child] of this.#visibleChildren(folder, components)) {
      const path = relative === "" ? name : `${relative}/${name}`;
      if (baseBytes + utf8Length(path) > MAX_PATH_BYTES) continue;
      yield { path, ...describe(name, child) };
      if (child.kind === "dir") {
        yield* this.#walkFolder(child, [...components, name], path, baseBytes);
      }
    }
  }

  /** Opens the file at `path` for reading; {@link PathError} for a folder. */
  openRead(path: string): Promise<StoredFile> {
    return settle(() => {
      const components = parseRemotePath(path);
      const node = this.#lookup(components, path);
      if (node.kind !== "file") throw new IsFolderError(`${sanitizeForDisplay(path)} is a folder`);
      const current = () => {
        try {
          return this.#lookup(components, path);
        } catch {
          return undefined; // removed since
        }
      };
      return new MemoryStoredFile(components.at(-1) ?? "", node, current);
    });
  }

  /** The file at `path` itself, opened for reading, or `null` (see `FileStore.openExisting`). */
  openExisting(path: string): Promise<StoredFile | null> {
    return settle(() => {
      const target = this.#target(path);
      const node = target?.folder.children.get(target.name);
      return node?.kind === "file" ? new MemoryStoredFile(target!.name, node) : null;
    });
  }

  /** What is at `path`: never `link` nor `other` in memory. */
  targetKind(path: string): Promise<TargetKind> {
    return settle(() => {
      const target = this.#target(path);
      if (target === undefined) return "missing";
      if (target.name === "") return "dir";
      return target.folder.children.get(target.name)?.kind ?? "missing";
    });
  }

  /** Creates the folder at `path` and those above it; applies `mtime` (see `FileStore`). */
  makeFolder(path: string, options: { mode?: number; mtime?: number } = {}): Promise<void> {
    return settle(() => {
      const components = parseRemotePath(path);
      const name = components.pop();
      let folder = this.#root;
      if (name !== undefined) {
        const parent = this.#enterFolders(components, path, { create: true });
        this.#assertWritable([...components, name], path);
        const existing = parent.children.get(name);
        if (existing?.kind === "file") {
          throw new ExistsError(`${quote(path)} exists and is not a folder`);
        }
        if (existing === undefined) {
          folder = newFolder(options.mode === undefined ? undefined : options.mode & 0o777 | 0o700);
          parent.children.set(name, folder);
          parent.mtime = Date.now();
        } else folder = existing;
      }
      if (options.mtime !== undefined) folder.mtime = options.mtime;
    });
  }

  /** Starts or resumes receiving the file at `path` (see `FileStore.beginUpload`). */
  beginUpload(path: string): Promise<PendingFile> {
    return settle(() => {
      const components = parseRemotePath(path);
      const name = components.pop();
      if (name === undefined) {
        throw new PathError(`Cannot receive ${quote(path)}: it is the served folder itself`);
      }
      const folder = this.#enterFolders(components, path, { create: true });
      this.#assertWritable([...components, name], path);
      return new MemoryPendingFile(folder, name, path);
    });
  }

  /**
   * The folder at `path` as a store of its own (see `FileStore.scope`): the same files, seen from
   * that folder, with the excluded paths below it. {@link NotFoundError} when `path` names no
   * folder (missing, excluded, or a file).
   */
  scope(path: string): Promise<MemoryStore> {
    return settle(() => {
      const components = parseRemotePath(path);
      const node = this.#lookup(components, path);
      if (node.kind !== "dir") {
        throw new NotFoundError(`Cannot find ${quote(path)}: no such file or folder`);
      }
      const view = new MemoryStore();
      view.#root = node;
      view.#excluded = this.#excluded
        .filter((excluded) =>
          excluded.length > components.length &&
          components.every((component, index) => excluded[index] === component)
        )
        .map((excluded) => excluded.slice(components.length));
      return view;
    });
  }

  /** The node at `components`: {@link NotFoundError} when missing, {@link PathError} if excluded. */
  #lookup(components: readonly string[], shown: string): MemoryNode {
    let node: MemoryNode = this.#root;
    for (const component of components) {
      const child: MemoryNode | undefined = node.kind === "dir"
        ? node.children.get(component)
        : undefined;
      if (child === undefined) {
        throw new NotFoundError(`Cannot find ${quote(shown)}: no such file or folder`);
      }
      node = child;
    }
    if (this.#isExcluded(components)) {
      throw hiddenPath(shown, "it is excluded from the served folder");
    }
    return node;
  }

  /**
   * The folder an upload to `path` lands in, and its name there (`""` for the root itself);
   * undefined when that folder is missing. {@link PathError} as for `LocalStore`.
   */
  #target(path: string): { folder: MemoryFolder; name: string } | undefined {
    const components = parseRemotePath(path);
    const name = components.pop();
    if (name === undefined) return { folder: this.#root, name: "" };
    let folder: MemoryNode;
    try {
      folder = this.#lookup(components, path);
    } catch (error) {
      if (error instanceof NotFoundError) return undefined;
      throw error;
    }
    if (folder.kind !== "dir") {
      throw new PathError(`Cannot write into ${quote(path)}: it is not a folder`);
    }
    this.#assertWritable([...components, name], path);
    return { folder, name };
  }

  /** The folder at `components`, entered (and with `create`, made) one component at a time. */
  #enterFolders(
    components: readonly string[],
    shown: string,
    options: { create: boolean; allowExcluded?: boolean },
  ): MemoryFolder {
    let folder = this.#root;
    for (const [index, component] of components.entries()) {
      if (!options.allowExcluded) this.#assertWritable(components.slice(0, index + 1), shown);
      let child = folder.children.get(component);
      if (child === undefined) {
        if (!options.create) {
          throw new NotFoundError(`Cannot find ${quote(shown)}: no such file or folder`);
        }
        child = newFolder();
        folder.children.set(component, child);
        folder.mtime = Date.now();
      }
      if (child.kind !== "dir") {
        throw new PathError(
          `Cannot write into ${quote(shown)}: "${sanitizeForDisplay(component)}" is not a folder`,
        );
      }
      folder = child;
    }
    return folder;
  }

  /** The children of `folder` (at `components`) in name order, excluded ones left out. */
  #visibleChildren(folder: MemoryFolder, components: readonly string[]): [string, MemoryNode][] {
    return [...folder.children]
      .filter(([name]) => !this.#isExcluded([...components, name]))
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  }

  #assertWritable(components: readonly string[], shown: string): void {
    if (this.#isExcluded(components)) {
      throw hiddenPath(shown, "it is excluded from the served folder");
    }
  }

  /** Whether `components` is, or lies inside, an excluded path. */
  #isExcluded(components: readonly string[]): boolean {
    return this.#excluded.some((excluded) =>
      excluded.length <= components.length &&
      excluded.every((component, index) => components[index] === component)
    );
  }
}

function quote(text: string): string {
  return `"${sanitizeForDisplay(text)}"`;
}

function utf8Length(text: string): number {
  return new TextEncoder().encode(text).length;
}
