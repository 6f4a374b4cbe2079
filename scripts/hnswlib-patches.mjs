// Two source changes to hnswlib (the copy inside hnswlib-node 3.0.0) that the postinstall build
// applies on top of -mavx2 -mfma (scripts/hnswlib-avx2.mjs). Neither changes what hnswlib computes:
// the build checks that an index built and searched with them is byte-identical to one built and
// searched without them, and installs the unpatched AVX2 build otherwise.
//
// Why (BENCHMARKS.md "Search", issue 17 goal 3): a search at 1M faces waits on memory. At ef 512
// a shard computes ~25,000 distances per query, each to a 512-byte vector at a random address in
// a level-0 block of ~390 MB. hnswlib prefetches only the first cache line of the next neighbour's
// vector, so the other 8 lines arrive one miss after another.
//  1. `gather`: the unvisited neighbours of a node are collected first and every cache line of
//     their vectors prefetched at once, so the misses overlap; their distances are then computed in
//     the original order, so the search visits and returns exactly what it did.
//  2. `hugepages`: the level-0 block is madvise(MADV_HUGEPAGE)d (Linux's transparent huge pages in
//     their common "madvise" mode), so the random reads stop missing the TLB on every vector.
// Each edit names the exact text it replaces; a source that differs (another hnswlib-node version)
// gets no patch at all, never half of one.

const HUGEPAGES_FN = `
// cosface: transparent huge pages for the level-0 block (random reads over hundreds of MB).
static inline void cosface_hugepages(void *p, size_t n) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    const size_t page = 4096;
    size_t a = ((size_t) p + page - 1) & ~(page - 1), e = ((size_t) p + n) & ~(page - 1);
    if (e > a) madvise((void *) a, e - a, MADV_HUGEPAGE);
#endif
}
`;

/** The vector lines of one element, all prefetched (the last line too when the vector straddles it). */
const PREFETCH_VECTOR = (indent, id) => `#ifdef USE_SSE
${indent}{
${indent}    const char *cf_p = getDataByInternalId(${id});
${indent}    for (size_t cf_off = 0; cf_off < data_size_; cf_off += 64) _mm_prefetch(cf_p + cf_off, _MM_HINT_T0);
${indent}    _mm_prefetch(cf_p + data_size_ - 1, _MM_HINT_T0);
${indent}}
#endif`;

export const HNSWLIB_PATCHES = [
  {
    name: 'hugepages',
    file: 'src/hnswlib/hnswalg.h',
    edits: [
      ['#include <atomic>\n', '#include <atomic>\n#if defined(__linux__)\n#include <sys/mman.h>\n#endif\n'],
      ['namespace hnswlib {\n', `namespace hnswlib {\n${HUGEPAGES_FN}`],
      [
        `        data_level0_memory_ = (char *) malloc(max_elements_ * size_data_per_element_);
        if (data_level0_memory_ == nullptr)
            throw std::runtime_error("Not enough memory");
`,
        `        data_level0_memory_ = (char *) malloc(max_elements_ * size_data_per_element_);
        if (data_level0_memory_ == nullptr)
            throw std::runtime_error("Not enough memory");
        cosface_hugepages(data_level0_memory_, max_elements_ * size_data_per_element_);
`,
      ],
      [
        '        data_level0_memory_ = data_level0_memory_new;\n',
        '        data_level0_memory_ = data_level0_memory_new;\n        cosface_hugepages(data_level0_memory_, new_max_elements * size_data_per_element_);\n',
      ],
      [
        '            throw std::runtime_error("Not enough memory: loadIndex failed to allocate level0");\n',
        '            throw std::runtime_error("Not enough memory: loadIndex failed to allocate level0");\n        cosface_hugepages(data_level0_memory_, max_elements * size_data_per_element_);\n',
      ],
    ],
  },
  {
    name: 'gather',
    file: 'src/hnswlib/hnswalg.h',
    edits: [
      // searchBaseLayer (the build's search, efConstruction)
      [
        `        visited_array[ep_id] = visited_array_tag;

        while (!candidateSet.empty()) {
`,
        `        visited_array[ep_id] = visited_array_tag;
        std::vector<tableint> cf_todo(std::max(maxM0_, maxM_) + 1);

        while (!candidateSet.empty()) {
`,
      ],
      [
        `#ifdef USE_SSE
            _mm_prefetch((char *) (visited_array + *(data + 1)), _MM_HINT_T0);
            _mm_prefetch((char *) (visited_array + *(data + 1) + 64), _MM_HINT_T0);
            _mm_prefetch(getDataByInternalId(*datal), _MM_HINT_T0);
            _mm_prefetch(getDataByInternalId(*(datal + 1)), _MM_HINT_T0);
#endif

            for (size_t j = 0; j < size; j++) {
                tableint candidate_id = *(datal + j);
//                    if (candidate_id == 0) continue;
#ifdef USE_SSE
                _mm_prefetch((char *) (visited_array + *(datal + j + 1)), _MM_HINT_T0);
                _mm_prefetch(getDataByInternalId(*(datal + j + 1)), _MM_HINT_T0);
#endif
                if (visited_array[candidate_id] == visited_array_tag) continue;
                visited_array[candidate_id] = visited_array_tag;
                char *currObj1 = (getDataByInternalId(candidate_id));
`,
        `            // cosface: the unvisited neighbours first, all their vectors prefetched together, then
            // their distances in the original order.
            size_t cf_n = 0;
#ifdef USE_SSE
            for (size_t j = 0; j < size; j++) _mm_prefetch((char *) (visited_array + *(datal + j)), _MM_HINT_T0);
#endif
            for (size_t j = 0; j < size; j++) {
                tableint cf_id = *(datal + j);
                if (visited_array[cf_id] == visited_array_tag) continue;
                visited_array[cf_id] = visited_array_tag;
                cf_todo[cf_n++] = cf_id;
${PREFETCH_VECTOR('                ', 'cf_id')}
            }
            for (size_t cf_t = 0; cf_t < cf_n; cf_t++) {
                tableint candidate_id = cf_todo[cf_t];
                char *currObj1 = (getDataByInternalId(candidate_id));
`,
      ],
      // searchBaseLayerST (a query's search, ef)
      [
        `        visited_array[ep_id] = visited_array_tag;

        while (!candidate_set.empty()) {
`,
        `        visited_array[ep_id] = visited_array_tag;
        std::vector<tableint> cf_todo(maxM0_ + 1);

        while (!candidate_set.empty()) {
`,
      ],
      [
        `#ifdef USE_SSE
            _mm_prefetch((char *) (visited_array + *(data + 1)), _MM_HINT_T0);
            _mm_prefetch((char *) (visited_array + *(data + 1) + 64), _MM_HINT_T0);
            _mm_prefetch(data_level0_memory_ + (*(data + 1)) * size_data_per_element_ + offsetData_, _MM_HINT_T0);
            _mm_prefetch((char *) (data + 2), _MM_HINT_T0);
#endif

            for (size_t j = 1; j <= size; j++) {
                int candidate_id = *(data + j);
//                    if (candidate_id == 0) continue;
#ifdef USE_SSE
                _mm_prefetch((char *) (visited_array + *(data + j + 1)), _MM_HINT_T0);
                _mm_prefetch(data_level0_memory_ + (*(data + j + 1)) * size_data_per_element_ + offsetData_,
                                _MM_HINT_T0);  ////////////
#endif
                if (!(visited_array[candidate_id] == visited_array_tag)) {
                    visited_array[candidate_id] = visited_array_tag;

                    char *currObj1 = (getDataByInternalId(candidate_id));
`,
        `            // cosface: the unvisited neighbours first, all their vectors prefetched together, then
            // their distances in the original order (so the search visits exactly what it did).
            size_t cf_n = 0;
#ifdef USE_SSE
            for (size_t j = 1; j <= size; j++) _mm_prefetch((char *) (visited_array + *(data + j)), _MM_HINT_T0);
#endif
            for (size_t j = 1; j <= size; j++) {
                tableint cf_id = *(data + j);
                if (!(visited_array[cf_id] == visited_array_tag)) {
                    visited_array[cf_id] = visited_array_tag;
                    cf_todo[cf_n++] = cf_id;
${PREFETCH_VECTOR('                    ', 'cf_id')}
                }
            }
            for (size_t cf_t = 0; cf_t < cf_n; cf_t++) {
                tableint candidate_id = cf_todo[cf_t];
                {
                    char *currObj1 = (getDataByInternalId(candidate_id));
`,
      ],
    ],
  },
];

/**
 * The patched text, or the reason it cannot be patched: every edit's text must occur exactly once
 * (counted before any edit is applied, so one edit cannot create or hide another's anchor).
 */
export function patchSource(text, edits) {
  for (const [find] of edits) {
    const n = text.split(find).length - 1;
    if (n !== 1) return { error: `expected text found ${n} times: ${JSON.stringify(find.split('\n').find((l) => l.trim()) ?? find)}` };
  }
  let out = text;
  for (const [find, replace] of edits) out = out.replace(find, () => replace);
  return { text: out };
}
