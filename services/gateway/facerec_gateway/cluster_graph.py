"""Cutting a graph of near faces into groups, one group per person: arrays in, labels out (no I/O, no gRPC).

The graph is what clustering learns from the registry: for each face, its nearest faces within the threshold
(at most k of them), as directed edges ``source -> target`` with their distance. The cuts here treat an edge found
from either end as one undirected link.

- :func:`chinese_whispers` is dlib's ``chinese_whispers_clustering`` (which dlib's own face clustering example
  runs at 0.5 on its descriptors) with weighted links: every face starts as its own label; faces in random order
  take the label with the most weight among their links (a tie goes to the smallest label, as in dlib's
  ``std::map``), until a whole pass changes nothing. A link weighs 1 up to ``FULL_WEIGHT_UP_TO`` of the threshold
  (0.35 at 0.5: most faces of one person are nearer), then less and less, to 0 at the threshold: a link that
  barely passes it (where most links between two different people are) counts little against the close links
  within a person, while a pair of near-duplicates (burst shots, a photo saved twice) does not outweigh the
  several ordinary links that tie it to the rest of its person. Measured on the same 32-nearest graphs at 0.5
  (``benchmarks/cluster.py``'s sets; precision / recall): dlib's unweighted cut (every link 1, each face voting for
  itself) 0.868 / 0.992 on LFW A-J (7,277 faces), 0.93 / 0.998 on 10k synthetic faces, 0.69 / 1.0 on Yale faces,
  0.89-0.97 / 0.98-1.0 on Essex faces94; weighted 0.920 / 0.989, 0.991 / 0.999, 1.0 / 1.0, 1.0 / 1.0 (dlib_johns
  1.0 / 1.0 and deepface 1.0 / 0.95-0.97 both ways). Weighting by ``1 - distance / threshold`` alone measured the
  same except with 15 % near-duplicates added to the synthetic faces: recall 0.952 against 0.995. The faces of a
  pass are updated in batches of ``1 / CW_BATCHES`` of them (each batch with numpy, from the labels before it)
  instead of one at a time: the same kind of fixed point, at array speed (10k faces in under a second).
- :func:`connected_groups` takes connected components of the mutual links (each face among the other's
  nearest): one false link merges two people (chaining: precision 0.18 on LFW A-J at 0.5). Kept as the
  baseline the benchmark compares with.

Memory and time grow with the links (at most faces x k): a few arrays of that length at a time.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

Labels = npt.NDArray[np.int64]
"""The group of each face: faces with the same label are one group."""

CW_BATCHES = 16
"""Batches per pass of :func:`chinese_whispers`: within a batch, faces see each other's labels of before it."""
FULL_WEIGHT_UP_TO = 0.7
"""A link weighs 1 up to this fraction of the threshold, then less and less, to 0 at the threshold."""
CW_MAX_PASSES = 100
"""dlib runs 100 passes' worth of single updates; real graphs settle in far fewer (10-20 at 10k faces)."""


@dataclass(frozen=True, eq=False)
class Edges:
    """Directed links between faces (numbered 0..faces-1) and their distances; parallel arrays."""

    sources: npt.NDArray[np.int64]
    targets: npt.NDArray[np.int64]
    distances: npt.NDArray[np.float32]

    @classmethod
    def empty(cls) -> Edges:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))

    @classmethod
    def concatenated(cls, parts: list[Edges]) -> Edges:
        """All the edges of ``parts`` in one."""
        if not parts:
            return cls.empty()
        return cls(
            np.concatenate([p.sources for p in parts]),
            np.concatenate([p.targets for p in parts]),
            np.concatenate([p.distances for p in parts]),
        )

    def __len__(self) -> int:
        return len(self.sources)


def undirected(faces: int, edges: Edges, *, mutual: bool = False) -> Edges:
    """The links as pairs ``low -> high`` without self-links, each once (with its distance); with ``mutual``, only
    the pairs found from both ends."""
    keep = edges.sources != edges.targets
    low = np.minimum(edges.sources[keep], edges.targets[keep])
    high = np.maximum(edges.sources[keep], edges.targets[keep])
    keys, first, counts = np.unique(low * faces + high, return_index=True, return_counts=True)
    distances = edges.distances[keep][first]
    if mutual:
        # A pair seen from both ends appears twice (a registry answers each query's neighbours once).
        keys, distances = keys[counts >= 2], distances[counts >= 2]
    return Edges(keys // faces, keys % faces, distances)


def chinese_whispers(
    faces: int,
    edges: Edges,
    threshold: float,
    *,
    weighted: bool = True,
    seed: int = 0,
    max_passes: int = CW_MAX_PASSES,
) -> Labels:
    """Chinese whispers over the weighted links (``weighted=False``: dlib's, every link and each face's vote for
    itself 1; see the module's docstring); the label of each face."""
    labels = np.arange(faces, dtype=np.int64)
    links = undirected(faces, edges)
    if weighted:
        ramp = threshold * (1.0 - FULL_WEIGHT_UP_TO)
        weights = np.minimum(1.0, (threshold - links.distances.astype(np.float64)) / ramp)
    else:
        weights = np.ones(len(links), dtype=np.float64)
    kept = weights > 0  # a link at the threshold says nothing
    low, high, weights = links.sources[kept], links.targets[kept], weights[kept]
    if len(low) == 0:
        return labels
    sources, targets = np.concatenate([low, high]), np.concatenate([high, low])
    weights = np.concatenate([weights, weights])
    if not weighted:
        own = np.arange(faces, dtype=np.int64)  # dlib's graph holds the pair (i, i)
        sources, targets, weights = np.r_[sources, own], np.r_[targets, own], np.r_[weights, np.ones(faces)]
    rng = np.random.default_rng(seed)
    batch_size = max(1, -(-faces // CW_BATCHES))
    for _ in range(max_passes):
        batch_of = np.empty(faces, dtype=np.int64)
        batch_of[rng.permutation(faces)] = np.arange(faces) // batch_size
        order = np.argsort(batch_of[sources], kind="stable")
        by_batch = np.searchsorted(batch_of[sources[order]], np.arange(CW_BATCHES + 1))
        changed = 0
        for start, end in itertools.pairwise(by_batch):
            if start < end:
                picked = order[start:end]
                changed += _vote(labels, sources[picked], targets[picked], weights[picked])
        if changed == 0:
            break
    return labels


def _vote(
    labels: Labels, sources: npt.NDArray[np.int64], targets: npt.NDArray[np.int64], weights: npt.NDArray[np.float64]
) -> int:
    """Each source face takes the label of the most weight among its targets (ties: the smallest label); how many
    labels changed."""
    voted = labels[targets]
    order = np.lexsort((voted, sources))
    sources, voted, weights = sources[order], voted[order], weights[order]
    # Runs of equal (source, label): their weights summed are the label's votes.
    starts = np.flatnonzero(np.r_[True, (sources[1:] != sources[:-1]) | (voted[1:] != voted[:-1])])
    run_sources, run_labels = sources[starts], voted[starts]
    votes = np.add.reduceat(weights, starts)
    # Per source: the most votes, then the smallest label.
    best = np.lexsort((run_labels, -votes, run_sources))
    first = best[np.r_[True, run_sources[best][1:] != run_sources[best][:-1]]]
    winners, won = run_sources[first], run_labels[first]
    changed = int(np.count_nonzero(labels[winners] != won))
    labels[winners] = won
    return changed


def connected_groups(faces: int, edges: Edges, *, mutual: bool = True) -> Labels:
    """Connected components of the links (only the mutual ones by default); the label of each face."""
    links = undirected(faces, edges, mutual=mutual)
    graph = coo_matrix((np.ones(len(links), dtype=np.int8), (links.sources, links.targets)), shape=(faces, faces))
    _, labels = connected_components(graph, directed=False)
    return labels.astype(np.int64)


def groups(labels: Labels, min_faces: int) -> tuple[list[npt.NDArray[np.int64]], npt.NDArray[np.int64]]:
    """``(groups, noise)``: the faces of each label with at least ``min_faces`` faces, largest group first (then
    by their first face), each in face order; and the faces of the smaller groups, in face order."""
    if len(labels) == 0:
        return [], np.zeros(0, dtype=np.int64)
    order = np.argsort(labels, kind="stable")  # faces by label, in face order within each
    sorted_labels = labels[order]
    starts = np.flatnonzero(np.r_[True, sorted_labels[1:] != sorted_labels[:-1]])
    members = np.split(order, starts[1:])
    kept = sorted((m for m in members if len(m) >= min_faces), key=lambda m: (-len(m), int(m[0])))
    small = [m for m in members if len(m) < min_faces]
    noise = np.sort(np.concatenate(small)) if small else np.zeros(0, dtype=np.int64)
    return kept, noise
