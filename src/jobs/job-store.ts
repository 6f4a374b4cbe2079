// Long work in the `jobs` table: created queued, running with a done/total count, then done with a
// JSON result or failed with an error. All of the jobs' persistence is in this one module.
import { and, eq, inArray } from 'drizzle-orm';
import type { OpenedDb } from '../db/open-db.js';
import { jobs, type JobStatus } from '../db/schema.js';

export interface JobInfo {
  id: number;
  kind: string;
  status: JobStatus;
  done: number;
  total: number | null;
  params: Record<string, unknown> | null;
  result: Record<string, unknown> | null;
  error: string | null;
  createdAt: Date;
  updatedAt: Date;
}

export class JobStore {
  constructor(private readonly opened: OpenedDb) {}

  create(kind: string, params: Record<string, unknown>): JobInfo {
    const now = new Date();
    return this.opened.db.insert(jobs).values({ kind, status: 'queued', params, createdAt: now, updatedAt: now }).returning().get() as JobInfo;
  }

  get(id: number): JobInfo | null {
    return (this.opened.db.select().from(jobs).where(eq(jobs.id, id)).get() as JobInfo | undefined) ?? null;
  }

  start(id: number): void {
    this.opened.db.update(jobs).set({ status: 'running', updatedAt: new Date() }).where(eq(jobs.id, id)).run();
  }

  progress(id: number, done: number, total: number | null): void {
    this.opened.db.update(jobs).set({ done, total, updatedAt: new Date() }).where(and(eq(jobs.id, id), eq(jobs.status, 'running'))).run();
  }

  finish(id: number, result: Record<string, unknown>): void {
    this.opened.db.update(jobs).set({ status: 'done', result, updatedAt: new Date() }).where(eq(jobs.id, id)).run();
  }

  fail(id: number, error: string): void {
    this.opened.db.update(jobs).set({ status: 'failed', error, updatedAt: new Date() }).where(eq(jobs.id, id)).run();
  }

  /** Jobs of a kind left queued or running by a process that stopped: failed with `reason`. */
  failUnfinished(kind: string, reason: string): number {
    return this.opened.db
      .update(jobs)
      .set({ status: 'failed', error: reason, updatedAt: new Date() })
      .where(and(eq(jobs.kind, kind), inArray(jobs.status, ['queued', 'running'])))
      .run().changes;
  }
}
