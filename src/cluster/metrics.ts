// Clustering quality against ground truth: pairwise and BCubed precision/recall/F, and counts.
// An unclustered face (-1) counts as a cluster of its own (a person of one face is not an error).
import { CosfaceError } from '../errors.js';

export interface ClusterQuality {
  faces: number;
  people: number;
  /** Predicted groups, each unclustered face counted as a group of one. */
  clusters: number;
  /** Predicted groups of two or more faces. */
  clustersOfTwoOrMore: number;
  unclustered: number;
  pairwise: { precision: number; recall: number; f: number };
  bcubed: { precision: number; recall: number; f: number };
  /** Of the groups with two or more faces, the fraction holding more than one person. */
  impureClusterFraction: number;
  /** Of the people with two or more faces, the fraction spread over more than one group. */
  splitPersonFraction: number;
}

const f1 = (p: number, r: number): number => (p + r > 0 ? (2 * p * r) / (p + r) : 0);
const pairs = (c: number): number => (c * (c - 1)) / 2;

/** Scores predicted labels (-1 = unclustered) against true labels (any integers). */
export function clusterQuality(predicted: ArrayLike<number>, truth: ArrayLike<number>): ClusterQuality {
  const n = predicted.length;
  if (truth.length !== n) throw new CosfaceError('BAD_INPUT', `clusterQuality: ${n} predictions for ${truth.length} true labels`);
  // Unclustered faces become groups of their own, keyed below any real label.
  const group = new Float64Array(n);
  for (let i = 0; i < n; i++) group[i] = predicted[i]! >= 0 ? predicted[i]! : -1 - i;
  const groupSize = new Map<number, number>();
  const personSize = new Map<number, number>();
  const cell = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    groupSize.set(group[i]!, (groupSize.get(group[i]!) ?? 0) + 1);
    personSize.set(truth[i]!, (personSize.get(truth[i]!) ?? 0) + 1);
    const key = `${group[i]}|${truth[i]}`;
    cell.set(key, (cell.get(key) ?? 0) + 1);
  }
  let tp = 0;
  for (const c of cell.values()) tp += pairs(c);
  let predPairs = 0;
  for (const c of groupSize.values()) predPairs += pairs(c);
  let truePairs = 0;
  for (const c of personSize.values()) truePairs += pairs(c);
  const pp = predPairs > 0 ? tp / predPairs : 1;
  const pr = truePairs > 0 ? tp / truePairs : 1;

  let bp = 0;
  let br = 0;
  for (let i = 0; i < n; i++) {
    const same = cell.get(`${group[i]}|${truth[i]}`)!;
    bp += same / groupSize.get(group[i]!)!;
    br += same / personSize.get(truth[i]!)!;
  }
  bp = n ? bp / n : 1;
  br = n ? br / n : 1;

  const peopleInGroup = new Map<number, number>();
  const groupsOfPerson = new Map<number, number>();
  for (const key of cell.keys()) {
    const [g, p] = key.split('|').map(Number) as [number, number];
    peopleInGroup.set(g, (peopleInGroup.get(g) ?? 0) + 1);
    groupsOfPerson.set(p, (groupsOfPerson.get(p) ?? 0) + 1);
  }
  let multi = 0;
  let impure = 0;
  for (const [g, size] of groupSize) {
    if (size < 2) continue;
    multi++;
    if (peopleInGroup.get(g)! > 1) impure++;
  }
  let multiPeople = 0;
  let split = 0;
  for (const [p, size] of personSize) {
    if (size < 2) continue;
    multiPeople++;
    if (groupsOfPerson.get(p)! > 1) split++;
  }
  let unclustered = 0;
  for (let i = 0; i < n; i++) if (predicted[i]! < 0) unclustered++;
  return {
    faces: n,
    people: personSize.size,
    clusters: groupSize.size,
    clustersOfTwoOrMore: multi,
    unclustered,
    pairwise: { precision: pp, recall: pr, f: f1(pp, pr) },
    bcubed: { precision: bp, recall: br, f: f1(bp, br) },
    impureClusterFraction: multi ? impure / multi : 0,
    splitPersonFraction: multiPeople ? split / multiPeople : 0,
  };
}
