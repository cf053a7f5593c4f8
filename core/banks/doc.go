// Package banks holds DMAD's dual memory banks and everything that searches
// them (METHOD.md §2, §3, §5):
//
//   - [Coreset]: PatchCore's approximate greedy k-center sampling, made fast
//     with triangle-inequality pruning over the assigned centres;
//   - [Searcher]: exact L2 nearest-neighbour search on ONNX Runtime
//     (MatMul-based squared distances + TopK over bank chunks), with a
//     same-source exclusion variant for normal training patches;
//   - [CascadeSearcher]: the fast search (SearchMode [SearchFast]):
//     candidates on the bank's top principal axes, re-ranked by exact
//     distance; both searchers are a [NeighbourSearcher];
//   - [NormalBank] and [AnomalyBank]: the two banks, their construction and
//     their bytes (MarshalBinary / WriteTo with a CRC32);
//   - [Knowledge]: the distance (and attention) knowledge residuals q−n, q−a;
//   - [PatchCore]: the baseline scorer (nearest normal entry).
//
// The image score and the pixel anomaly map are in core/heatmap.
package banks
