// Folders -> photo files: a recursive walk that follows symbolic links (a directory reached again
// by its device and inode is not entered twice, so link loops end), takes JPEG, PNG and WebP by
// their first bytes rather than their names, and reports every file it leaves out with a reason
// instead of failing the walk. Below the pipeline: it knows files, not faces.
import type { Dirent, Stats } from 'node:fs';
import { open, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { CosfaceError } from '../errors.js';

export type PhotoFormat = 'jpeg' | 'png' | 'webp';

export interface WalkedPhoto {
  /** The root as given joined with the path below it (what users see and reports print). */
  path: string;
  /** The root it was found under, as given. */
  root: string;
  /** The path below the root ('' when the root is the file itself). */
  relative: string;
  format: PhotoFormat;
  size: number;
  /** Device and inode of the file the path leads to (after links). */
  dev: number;
  ino: number;
}

export type SkipReason =
  | 'unreadable' // permission denied or an I/O error
  | 'not an image' // not JPEG, PNG or WebP by its first bytes
  | 'empty file'
  | 'broken link' // a symbolic link to nothing
  | 'symlink loop' // a link back to a folder above it (or to itself)
  | 'same folder' // a folder reached a second time through another link
  | 'same file' // a file reached a second time through another link
  | 'not a file'; // a socket, FIFO or device

export interface SkippedFile {
  photo: string;
  reason: SkipReason;
  /** More words for people: the errno code, the format seen, the path first seen. */
  detail?: string;
}

export interface WalkOptions {
  /** Enter folders below the roots (default true). */
  recursive?: boolean;
  /** Take names starting with a dot (default false: .DS_Store, ._x.jpg, .thumbnails). */
  hidden?: boolean;
}

export interface WalkResult {
  photos: WalkedPhoto[];
  skipped: SkippedFile[];
}

/** The format a file's first bytes announce, or null. */
export function sniffFormat(head: Uint8Array): PhotoFormat | null {
  if (head.length >= 3 && head[0] === 0xff && head[1] === 0xd8 && head[2] === 0xff) return 'jpeg';
  if (head.length >= 8 && head[0] === 0x89 && head[1] === 0x50 && head[2] === 0x4e && head[3] === 0x47 && head[4] === 0x0d && head[5] === 0x0a && head[6] === 0x1a && head[7] === 0x0a) return 'png';
  const ascii = (from: number, s: string) => [...s].every((ch, i) => head[from + i] === ch.charCodeAt(0));
  if (head.length >= 12 && ascii(0, 'RIFF') && ascii(8, 'WEBP')) return 'webp';
  return null;
}

const SNIFF_BYTES = 12;
/** Files sniffed at once per folder: enough to hide disk latency, few enough for file handles. */
const PARALLEL = 32;

async function readHead(path: string): Promise<Uint8Array> {
  const fh = await open(path, 'r');
  try {
    const buf = new Uint8Array(SNIFF_BYTES);
    const { bytesRead } = await fh.read(buf, 0, SNIFF_BYTES, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

const errno = (e: unknown) => (e as NodeJS.ErrnoException).code ?? (e as Error).message;
const key = (s: Stats) => `${s.dev}:${s.ino}`;

/**
 * Every photo under the roots (folders or single files), in name order per folder. A root that does
 * not exist or cannot be read fails with BAD_INPUT (nothing was walked); below the roots nothing
 * fails: each file left out is in `skipped` with its reason.
 */
export async function walkPhotos(roots: readonly string[], opts: WalkOptions = {}): Promise<WalkResult> {
  const recursive = opts.recursive ?? true;
  const hidden = opts.hidden ?? false;
  const photos: WalkedPhoto[] = [];
  const skipped: SkippedFile[] = [];
  const dirsSeen = new Map<string, string>(); // dev:ino -> first path
  const filesSeen = new Map<string, string>();

  // Check every root before walking any, so a typo fails at once and changes nothing.
  const rootStats: Stats[] = [];
  for (const root of roots) {
    try {
      rootStats.push(await stat(root));
    } catch (e) {
      const code = errno(e);
      throw new CosfaceError('BAD_INPUT', code === 'ENOENT' ? `${root}: no such file or folder` : `${root}: cannot read (${code})`, { cause: e });
    }
  }

  async function takeFile(path: string, root: string, relative: string, st: Stats): Promise<void> {
    const k = key(st);
    const first = filesSeen.get(k);
    if (first !== undefined) {
      skipped.push({ photo: path, reason: 'same file', detail: `the file ${first} already taken` });
      return;
    }
    filesSeen.set(k, path);
    if (st.size === 0) {
      skipped.push({ photo: path, reason: 'empty file' });
      return;
    }
    let head: Uint8Array;
    try {
      head = await readHead(path);
    } catch (e) {
      skipped.push({ photo: path, reason: 'unreadable', detail: errno(e) });
      return;
    }
    const format = sniffFormat(head);
    if (!format) {
      skipped.push({ photo: path, reason: 'not an image', detail: 'not JPEG, PNG or WebP by its first bytes' });
      return;
    }
    photos.push({ path, root, relative, format, size: st.size, dev: st.dev, ino: st.ino });
  }

  async function walkDir(dir: string, root: string, relative: string, st: Stats, ancestors: Set<string>): Promise<void> {
    const k = key(st);
    if (ancestors.has(k)) {
      skipped.push({ photo: dir, reason: 'symlink loop', detail: `links back to ${dirsSeen.get(k)}` });
      return;
    }
    const first = dirsSeen.get(k);
    if (first !== undefined) {
      skipped.push({ photo: dir, reason: 'same folder', detail: `the folder ${first} already walked` });
      return;
    }
    dirsSeen.set(k, dir);
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (e) {
      skipped.push({ photo: dir, reason: 'unreadable', detail: errno(e) });
      return;
    }
    entries = entries.filter((e) => hidden || !e.name.startsWith('.')).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const inner = new Set(ancestors).add(k);
    // Stat (following links) in parallel; then files and folders in name order.
    const stats: (Stats | NodeJS.ErrnoException)[] = [];
    for (let i = 0; i < entries.length; i += PARALLEL) {
      const part = entries.slice(i, i + PARALLEL);
      stats.push(...(await Promise.all(part.map((e) => stat(join(dir, e.name)).catch((err: NodeJS.ErrnoException) => err)))));
    }
    const files: Promise<void>[] = [];
    const flush = async () => {
      await Promise.all(files);
      files.length = 0;
    };
    const before = photos.length;
    for (let i = 0; i < entries.length; i++) {
      const e = entries[i]!;
      const s = stats[i]!;
      const path = join(dir, e.name);
      const rel = relative ? join(relative, e.name) : e.name;
      if (s instanceof Error) {
        const code = s.code ?? s.message;
        if (code === 'ENOENT' && e.isSymbolicLink()) skipped.push({ photo: path, reason: 'broken link' });
        else if (code === 'ELOOP') skipped.push({ photo: path, reason: 'symlink loop', detail: 'the link leads to itself' });
        else skipped.push({ photo: path, reason: 'unreadable', detail: code });
        continue;
      }
      if (s.isDirectory()) {
        if (!recursive) continue;
        await flush();
        await walkDir(path, root, rel, s, inner);
      } else if (s.isFile()) {
        files.push(takeFile(path, root, rel, s));
        if (files.length >= PARALLEL) await flush();
      } else {
        skipped.push({ photo: path, reason: 'not a file' });
      }
    }
    await flush();
    // Parallel sniffs may finish out of order: keep the photos under this folder in path order.
    if (photos.length - before > 1) {
      const mine = photos.splice(before);
      mine.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
      photos.push(...mine);
    }
  }

  for (let i = 0; i < roots.length; i++) {
    const root = roots[i]!;
    const st = rootStats[i]!;
    if (st.isDirectory()) await walkDir(root, root, '', st, new Set());
    else if (st.isFile()) await takeFile(root, root, '', st);
    else skipped.push({ photo: root, reason: 'not a file' });
  }
  return { photos, skipped };
}

/** One line for a skipped file: "path: reason (detail)". */
export function describeSkip(s: SkippedFile): string {
  return `${s.photo}: ${s.reason}${s.detail ? ` (${s.detail})` : ''}`;
}
