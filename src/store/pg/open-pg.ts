// Placeholder until the Postgres backend lands: opening a Postgres store fails with a clear code.
import { CosfaceError } from '../../errors.js';
import type { ExactScorer } from '../exact-scorer.js';
import type { ParsedLocation } from '../open-store.js';
import type { StoreParts } from '../store.js';

export async function openPgParts(
  _loc: Exclude<ParsedLocation, { kind: 'sqlite' }>,
  _o: { scorer: ExactScorer; exactBelow: number },
): Promise<Omit<StoreParts, 'scorer' | 'scorerName' | 'exactBelow' | 'location' | 'dbPath' | 'indexDir'>> {
  throw new CosfaceError('BAD_INPUT', 'the Postgres backend is not available in this build yet');
}
