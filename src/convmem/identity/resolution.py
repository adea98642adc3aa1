"""Identity resolution as a pure function over plain data.

Given incoming records (each with normalized identifiers, optionally pinned to
an existing profile) and which canonical profiles already hold those
identifiers, decide, per group of records that belong together, which profile
they write to and which profiles merge into it. No database, no HTTP.

Rules (DESIGN.md §4): identifiers of idTypes listed in the matching rules link
a record to the profiles holding them. A unique idType (enforceUnique) links on
one shared value; a non-unique one only when a profile shares at least two such
values with the record (a compound identifier). Records of one batch sharing a
unique value belong together. A group with no profile creates one; with one
profile updates it; with several merges them into the earliest (smallest id).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

Key = tuple[str, str]  # (idType, normalized value)


@dataclass(frozen=True)
class IdConfig:
    id_type: str
    normalization: str = "trim"
    unique: bool = True
    fuzzy: bool = False
    threshold: int = 75
    limit: int = 100
    lifo: bool = False


@dataclass
class Group:
    records: list[int]
    profiles: list[str]  # existing canonical profiles, earliest first
    # The matching rule (idType) that first linked each merged profile.
    rules: dict[str, str] = field(default_factory=dict)

    @property
    def canonical(self) -> str | None:
        return self.profiles[0] if self.profiles else None

    @property
    def merged(self) -> list[str]:
        return self.profiles[1:]


class _UnionFind:
    """Records are nodes by their index (int), profiles by their id (str)."""

    def __init__(self) -> None:
        self.parent: dict[int | str, int | str] = {}

    def find(self, node: int | str) -> int | str:
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a: int | str, b: int | str) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def plan(
    records: Sequence[Iterable[Key]],
    anchors: Sequence[str | None],
    holders: Mapping[Key, Iterable[str]],
    configs: Mapping[str, IdConfig],
    rules: Sequence[str],
) -> list[Group]:
    """Group records with the profiles they resolve to.

    `holders` maps each identifier key (for fuzzy idTypes, the incoming key)
    to the canonical profiles that hold it or, for fuzzy idTypes, a value
    similar enough. `anchors[i]` pins record i to a profile (PATCH and the
    identifier endpoints).
    """
    uf = _UnionFind()
    priority = {id_type: n for n, id_type in enumerate(rules)}
    link_rule: dict[str, tuple[int, str]] = {}
    first_record_of: dict[Key, int] = {}

    def link(record: int, profile: str, id_type: str) -> None:
        uf.union(record, profile)
        rank = (priority.get(id_type, len(priority)), id_type)
        if profile not in link_rule or rank < link_rule[profile]:
            link_rule[profile] = rank

    for i, keys in enumerate(records):
        uf.find(i)
        anchor = anchors[i]
        if anchor is not None:
            uf.union(i, anchor)
        compound: dict[str, int] = defaultdict(int)
        for key in set(keys):
            id_type = key[0]
            config = configs.get(id_type)
            if config is None or id_type not in priority:
                continue
            if config.unique:
                for profile in holders.get(key, ()):
                    link(i, profile, id_type)
                other = first_record_of.setdefault(key, i)
                if other != i:
                    uf.union(i, other)
            else:
                for profile in holders.get(key, ()):
                    compound[profile] += 1
        for profile, shared in compound.items():
            if shared >= 2:
                best = min(
                    (k[0] for k in keys if k[0] in priority and profile in holders.get(k, ())),
                    key=lambda t: priority[t],
                )
                link(i, profile, best)

    groups: dict[int | str, Group] = {}
    for i in range(len(records)):
        root = uf.find(i)
        groups.setdefault(root, Group(records=[], profiles=[])).records.append(i)
    for node in list(uf.parent):
        if isinstance(node, str):
            root = uf.find(node)
            if root in groups:
                groups[root].profiles.append(node)
    result = []
    for group in groups.values():
        group.profiles.sort()
        ranks = [link_rule[p] for p in group.profiles if p in link_rule]
        fallback = min(ranks)[1] if ranks else "anchor"
        for profile in group.merged:
            group.rules[profile] = link_rule[profile][1] if profile in link_rule else fallback
        result.append(group)
    result.sort(key=lambda g: g.records[0])
    return result
