// A photo library in the database (cosface dedupe): photos known by content hash, every face with
// its embedding, and the person each face was clustered into. All of the library's persistence is
// in this one module (drizzle over SQLite), so another database backend replaces only this file.
import { and, eq, inArray, isNotNull } from 'drizzle-orm';
import type { OpenedDb } from '../db/open-db.js';
import { libraries, libraryFaces, libraryPeople, libraryPhotos, type FaceKeypoints } from '../db/schema.js';
import { CosfaceError } from '../errors.js';
import { blobToEmbedding, embeddingToBlob } from '../store/embedding.js';

export interface LibraryInfo {
  id: number;
  name: string;
  modelId: string;
  dimension: number;
}

export interface NewLibraryFace {
  box: [number, number, number, number];
  keypoints?: FaceKeypoints;
  score: number;
  quality: number;
  embedding: Float32Array | readonly number[];
}

export interface NewLibraryPhoto {
  contentHash: string;
  path: string;
  format: string;
  bytes: number;
  width: number;
  height: number;
  perceptualHashes: string | null;
  faces: readonly NewLibraryFace[];
}

export interface LibraryPhoto {
  id: number;
  contentHash: string;
  path: string;
  format: string;
  bytes: number;
  width: number;
  height: number;
  perceptualHashes: string | null;
  faceCount: number;
}

export interface LibraryFace {
  id: number;
  photoId: number;
  box: [number, number, number, number];
  score: number;
  quality: number;
  embedding: Float32Array;
  /** The person the last clustering put the face in, or null (unclustered, or not clustered yet). */
  personId: number | null;
  /** Whether a clustering has seen the face. */
  clustered: boolean;
}

const SQLITE_VARIABLES = 500;

export class PhotoLibrary {
  private constructor(
    private readonly opened: OpenedDb,
    readonly info: LibraryInfo,
  ) {}

  /** The library of this name, created for the model when it does not exist. */
  static open(opened: OpenedDb, name: string, model: { id: string; dimension: number }): PhotoLibrary {
    const db = opened.db;
    let row = db.select().from(libraries).where(eq(libraries.name, name)).get();
    if (!row) row = db.insert(libraries).values({ name, modelId: model.id, dimension: model.dimension, createdAt: new Date() }).returning().get();
    if (row.modelId !== model.id || row.dimension !== model.dimension) {
      throw new CosfaceError('MODEL_MISMATCH', `photo library "${name}" holds ${row.modelId} (${row.dimension}-d) embeddings; this pipeline makes ${model.id} (${model.dimension}-d)`);
    }
    return new PhotoLibrary(opened, { id: row.id, name: row.name, modelId: row.modelId, dimension: row.dimension });
  }

  /** content hash -> photo, for every photo the library has embedded. */
  photosByHash(): Map<string, LibraryPhoto> {
    const rows = this.opened.db
      .select({
        id: libraryPhotos.id,
        contentHash: libraryPhotos.contentHash,
        path: libraryPhotos.path,
        format: libraryPhotos.format,
        bytes: libraryPhotos.bytes,
        width: libraryPhotos.width,
        height: libraryPhotos.height,
        perceptualHashes: libraryPhotos.perceptualHashes,
        faceCount: libraryPhotos.faceCount,
      })
      .from(libraryPhotos)
      .where(eq(libraryPhotos.libraryId, this.info.id))
      .all();
    return new Map(rows.map((r) => [r.contentHash, r]));
  }

  /**
   * Adds embedded photos and their faces in one transaction: after a crash either the whole batch
   * is there or none of it, so a rerun embeds exactly the photos not yet committed. A content hash
   * already present is left as it is (two runs racing on one library).
   */
  addPhotos(photos: readonly NewLibraryPhoto[]): LibraryPhoto[] {
    const now = new Date();
    const out: LibraryPhoto[] = [];
    this.opened.db.transaction((tx) => {
      for (const p of photos) {
        for (const f of p.faces) {
          if (f.embedding.length !== this.info.dimension) throw new CosfaceError('DIMENSION_MISMATCH', `${p.path}: a ${f.embedding.length}-d embedding for a ${this.info.dimension}-d library`);
        }
        const row = tx
          .insert(libraryPhotos)
          .values({
            libraryId: this.info.id,
            contentHash: p.contentHash,
            path: p.path,
            format: p.format,
            bytes: p.bytes,
            width: p.width,
            height: p.height,
            perceptualHashes: p.perceptualHashes,
            faceCount: p.faces.length,
            createdAt: now,
          })
          .onConflictDoNothing()
          .returning({ id: libraryPhotos.id })
          .get();
        if (!row) continue;
        if (p.faces.length) {
          tx.insert(libraryFaces)
            .values(
              p.faces.map((f) => ({
                photoId: row.id,
                box: f.box,
                keypoints: f.keypoints ?? null,
                score: f.score,
                quality: f.quality,
                embedding: embeddingToBlob(Float32Array.from(f.embedding)),
              })),
            )
            .run();
        }
        out.push({ id: row.id, contentHash: p.contentHash, path: p.path, format: p.format, bytes: p.bytes, width: p.width, height: p.height, perceptualHashes: p.perceptualHashes, faceCount: p.faces.length });
      }
    });
    return out;
  }

  /** Records where photos were seen this time (moved or renamed files keep their faces). */
  updatePaths(moves: readonly { photoId: number; path: string }[]): void {
    if (moves.length === 0) return;
    this.opened.db.transaction((tx) => {
      for (const m of moves) tx.update(libraryPhotos).set({ path: m.path }).where(eq(libraryPhotos.id, m.photoId)).run();
    });
  }

  /** Every face of the library, in photo id then face id order. */
  allFaces(): LibraryFace[] {
    return this.opened.db
      .select({ id: libraryFaces.id, photoId: libraryFaces.photoId, box: libraryFaces.box, score: libraryFaces.score, quality: libraryFaces.quality, embedding: libraryFaces.embedding, personId: libraryFaces.personId, clustered: libraryFaces.clustered })
      .from(libraryFaces)
      .innerJoin(libraryPhotos, eq(libraryPhotos.id, libraryFaces.photoId))
      .where(eq(libraryPhotos.libraryId, this.info.id))
      .orderBy(libraryFaces.photoId, libraryFaces.id)
      .all()
      .map((r) => ({ ...r, embedding: blobToEmbedding(r.embedding) }));
  }

  /** The faces of these photos, in photo id then face id order. */
  facesOfPhotos(photoIds: readonly number[]): LibraryFace[] {
    const out: LibraryFace[] = [];
    const ids = [...photoIds].sort((a, b) => a - b);
    for (let i = 0; i < ids.length; i += SQLITE_VARIABLES) {
      const rows = this.opened.db
        .select({ id: libraryFaces.id, photoId: libraryFaces.photoId, box: libraryFaces.box, score: libraryFaces.score, quality: libraryFaces.quality, embedding: libraryFaces.embedding, personId: libraryFaces.personId, clustered: libraryFaces.clustered })
        .from(libraryFaces)
        .where(inArray(libraryFaces.photoId, ids.slice(i, i + SQLITE_VARIABLES)))
        .orderBy(libraryFaces.photoId, libraryFaces.id)
        .all();
      for (const r of rows) out.push({ ...r, embedding: blobToEmbedding(r.embedding) });
    }
    return out;
  }

  /** People a user named: they are never merged with another person automatically. */
  namedPeople(): Set<number> {
    return new Set(this.peopleNames().keys());
  }

  /** person id -> name, for the people a user named. */
  peopleNames(): Map<number, string> {
    const rows = this.opened.db
      .select({ id: libraryPeople.id, name: libraryPeople.name })
      .from(libraryPeople)
      .where(and(eq(libraryPeople.libraryId, this.info.id), isNotNull(libraryPeople.name)))
      .all();
    return new Map(rows.map((r) => [r.id, r.name!]));
  }

  /** Names a person (confirmed by the user). */
  namePerson(personId: number, name: string): void {
    const r = this.opened.db.update(libraryPeople).set({ name }).where(and(eq(libraryPeople.id, personId), eq(libraryPeople.libraryId, this.info.id))).run();
    if (r.changes === 0) throw new CosfaceError('NOT_FOUND', `no person ${personId} in library "${this.info.name}"`);
  }

  /**
   * Stores a clustering in one transaction: each face's person (null: unclustered), and the face
   * marked clustered. `newPeople` people are created first; in `assign`, a negative person -k means
   * the k-th new person (1-based). Returns the ids the new people got, in order.
   */
  savePeople(assign: readonly { faceId: number; person: number | null }[], newPeople: number): number[] {
    const ids: number[] = [];
    const now = new Date();
    this.opened.db.transaction((tx) => {
      for (let k = 0; k < newPeople; k++) ids.push(tx.insert(libraryPeople).values({ libraryId: this.info.id, createdAt: now }).returning({ id: libraryPeople.id }).get().id);
      for (const a of assign) {
        const person = a.person === null ? null : a.person < 0 ? ids[-a.person - 1]! : a.person;
        tx.update(libraryFaces).set({ personId: person, clustered: true }).where(eq(libraryFaces.id, a.faceId)).run();
      }
    });
    return ids;
  }

  /** How many photos and faces the library holds. */
  counts(): { photos: number; faces: number } {
    const sqlite = this.opened.sqlite;
    const photos = (sqlite.prepare('SELECT count(*) AS n FROM library_photos WHERE library_id = ?').get(this.info.id) as { n: number }).n;
    const faces = (sqlite.prepare('SELECT count(*) AS n FROM library_faces f JOIN library_photos p ON p.id = f.photo_id WHERE p.library_id = ?').get(this.info.id) as { n: number }).n;
    return { photos, faces };
  }
}
