"""Deterministic seed data for an emulated Dataverse org: a realistic sales organization.

``seed_sales_org(org, records=N, seed=S)`` writes business units, users, teams (with memberships),
accounts, contacts, leads, opportunities, competitors (+ the lead-competitor N:N), tasks and phone
calls with lookups, option-set values and owners. Same ``records`` + ``seed`` (+ ``now``) -> the same
rows, ids included. Rows go in with ``executemany`` in one transaction (1 M rows in about a minute).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from .dataverse.metadata import q
from .dataverse.org import DataverseOrg
from .dataverse.values import fmt_dt

ANCHOR = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)  # default "now" of seeded data (determinism)
_FIRST = ("Aaron Abby Adam Alex Alice Amir Ana Ben Bianca Carl Carmen Chloe Dan Daria Eli Emma Eric Eva Felix Fiona "
          "Gabe Grace Hana Henry Ian Ines Jack Jade Jonas Julia Kai Kara Leo Lena Liam Lucy Mark Maya Nate Nina "
          "Omar Olga Paul Petra Quinn Rosa Ryan Sara Sean Sofia Tom Tina Uma Victor Vera Will Xena Yuki Zoe").split()
_LAST = ("Adams Baker Brown Clark Davis Evans Fischer Garcia Green Hall Harris Hill Jones King Kovac Lee Lopez "
         "Martin Meyer Miller Moore Novak Nguyen Parker Perez Quinn Reed Roberts Rossi Schmidt Scott Silva Smith "
         "Taylor Thomas Turner Walker White Wilson Young").split()
_CO_A = ("Blue Bright Cedar Coastal Crystal Delta Eagle Evergreen First Global Golden Granite Harbor Iron Lake "
         "Maple Metro North Oak Pacific Pioneer Prime River Silver Summit Sun Union Vertex West").split()
_CO_B = ("Analytics Bank Brewing Builders Capital Consulting Dynamics Energy Foods Health Industries Logistics "
         "Media Motors Networks Partners Pharma Retail Robotics Software Solutions Systems Telecom Travel").split()
_CO_C = ("Inc.", "Ltd.", "LLC", "GmbH", "s.r.o.", "AG", "Group", "Corp.")
_CITIES = ("Seattle", "Redmond", "Bratislava", "Vienna", "Berlin", "London", "Paris", "Madrid", "Toronto",
           "Chicago", "Austin", "Prague", "Warsaw", "Dublin", "Oslo", "Sydney")
_COUNTRIES = ("United States", "Slovakia", "Austria", "Germany", "United Kingdom", "France", "Spain", "Canada",
              "Czechia", "Poland", "Ireland", "Norway", "Australia")
_SUBJECTS = ("Follow up", "Send proposal", "Schedule demo", "Call back", "Prepare quote", "Check contract",
             "Discuss renewal", "Introduce new product", "Collect feedback", "Confirm meeting")


class _Gen:
    def __init__(self, seed: int, now: dt.datetime) -> None:
        self.rng = random.Random(seed)
        self.now = now

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def pick(self, seq: Any) -> Any:
        return seq[self.rng.randrange(len(seq))]

    def when(self, max_days: int = 730) -> str:
        return fmt_dt(self.now - dt.timedelta(seconds=self.rng.randrange(max_days * 86400)))

    def date(self, lo_days: int, hi_days: int) -> str:
        return (self.now + dt.timedelta(days=self.rng.randint(lo_days, hi_days))).date().isoformat()

    def company(self) -> str:
        return f"{self.pick(_CO_A)} {self.pick(_CO_B)} {self.pick(_CO_C)}"

    def person(self) -> tuple[str, str]:
        return self.pick(_FIRST), self.pick(_LAST)


def _plan(records: int) -> dict[str, int]:
    n = max(records, 0)
    bus = min(max(n // 50000, 0), 9)
    users = min(max(n // 2000, 3), 500)
    teams = min(max(users // 10, 1), 50)
    rest = max(n - bus - users - teams, 0)
    competitors = min(max(rest // 100, 1 if rest else 0), 500)
    rest -= competitors
    share = {"account": 15, "contact": 25, "lead": 15, "opportunity": 10, "task": 15, "phonecall": 10}
    counts = {k: rest * v // 100 for k, v in share.items()}
    counts["leadcompetitors"] = rest - sum(counts.values())
    counts.update({"businessunit": bus, "systemuser": users, "team": teams, "competitor": competitors})
    return counts


def seed_sales_org(org: DataverseOrg, records: int = 1000, seed: int = 1,
                   now: dt.datetime | None = None) -> dict[str, int]:
    """Fill an empty org with about ``records`` rows; returns the number of rows written per table."""
    g = _Gen(seed, now or ANCHOR)
    counts = _plan(records)
    root_bu = org.root_business_unit_id
    system = org.system_user_id
    ids = {k: [g.guid() for _ in range(v)] for k, v in counts.items()}
    bus = [root_bu] + ids["businessunit"]
    user_bu = {u: g.pick(bus) for u in ids["systemuser"]}
    team_bu = {t: g.pick(bus) for t in ids["team"]}
    owners: list[tuple[str, str, str]] = [(u, "systemuser", b) for u, b in user_bu.items()]
    owners += [(t, "team", b) for t, b in team_bu.items()][: max(1, len(owners) // 10)]
    written: dict[str, int] = {}

    def insert(entity: str, columns: list[str], rows: Iterator[tuple[Any, ...]]) -> None:
        ent = org.md.entities[entity]
        audit = "createdon" in ent.attrs
        owned = ent.user_owned
        cols = list(columns) + ["versionnumber"]
        if audit:
            cols += ["createdon", "modifiedon", "createdby", "createdby__type", "modifiedby", "modifiedby__type"]
        if owned:
            cols += ["ownerid", "ownerid__type", "owningbusinessunit", "owningbusinessunit__type"]
        sql = f"INSERT INTO {q(entity)} ({', '.join(q(c) for c in cols)}) VALUES ({', '.join('?' for _ in cols)})"
        users = ids["systemuser"] or [system]

        def full() -> Iterator[tuple[Any, ...]]:
            n = 0
            for row in rows:
                n += 1
                extra: tuple[Any, ...] = (org.next_version(),)
                if audit:
                    created = g.when()
                    by = g.pick(users)
                    extra += (created, created if g.rng.random() < 0.6 else max(created, g.when(120)), by,
                              "systemuser", by, "systemuser")
                if owned:
                    o = g.pick(owners)
                    extra += (o[0], o[1], o[2], "businessunit")
                yield row + extra
            written[entity] = n
        org.conn.executemany(sql, full())

    def lookup(pool: list[str], p: float) -> str | None:
        return g.pick(pool) if pool and g.rng.random() < p else None

    with org.lock, org.transaction():
        insert("businessunit", ["businessunitid", "name", "parentbusinessunitid", "parentbusinessunitid__type",
                                "isdisabled"],
               ((b, f"{g.pick(_CITIES)} Sales {i + 1}", root_bu, "businessunit", 0)
                for i, b in enumerate(ids["businessunit"])))
        def users() -> Iterator[tuple[Any, ...]]:
            for u in ids["systemuser"]:
                first, last = g.person()
                mail = f"{first}.{last}.{u[:4]}@contoso.test".lower()
                yield (u, f"{first} {last}", first, last, mail, mail, user_bu[u], "businessunit", 0, 0,
                       g.pick(("Sales Rep", "Account Manager", "Sales Manager", "Inside Sales")))
        insert("systemuser", ["systemuserid", "fullname", "firstname", "lastname", "domainname",
                              "internalemailaddress", "businessunitid", "businessunitid__type", "isdisabled",
                              "accessmode", "title"], users())
        insert("team", ["teamid", "name", "businessunitid", "businessunitid__type", "teamtype", "isdefault"],
               ((t, f"{g.pick(_CITIES)} Team {i + 1}", team_bu[t], "businessunit", 0, 0)
                for i, t in enumerate(ids["team"])))
        members = sorted({(g.pick(ids["team"]), u) for u in ids["systemuser"] if ids["team"]})
        org.conn.executemany("INSERT INTO teammembership (teammembershipid, teamid, systemuserid, versionnumber) "
                             "VALUES (?,?,?,?)", ((g.guid(), t, u, org.next_version()) for t, u in members))
        insert("competitor", ["competitorid", "name", "websiteurl", "reportedrevenue"],
               ((c, g.company(), f"https://www.competitor{i}.test", float(g.rng.randrange(10**6, 10**9)))
                for i, c in enumerate(ids["competitor"])))
        accounts, contacts, leads = ids["account"], ids["contact"], ids["lead"]

        def account_rows() -> Iterator[tuple[Any, ...]]:
            for i, a in enumerate(accounts):
                parent = accounts[g.rng.randrange(i)] if i and g.rng.random() < 0.1 else None
                state = 0 if g.rng.random() < 0.9 else 1
                yield (a, g.company(), f"ACC-{i + 1:07d}", f"+1 555 {g.rng.randrange(10**6, 10**7)}",
                       f"info{i}@account.test", g.pick(_CITIES), g.pick(_COUNTRIES),
                       float(g.rng.randrange(10**4, 10**9)), g.rng.randrange(1, 50000), g.rng.randint(1, 33),
                       g.rng.randint(1, 2), g.rng.randint(1, 12), int(g.rng.random() < 0.1),
                       parent, "account" if parent else None, lookup(contacts, 0.6), None,
                       state, 1 if state == 0 else 2)
        insert("account", ["accountid", "name", "accountnumber", "telephone1", "emailaddress1", "address1_city",
                           "address1_country", "revenue", "numberofemployees", "industrycode",
                           "accountcategorycode", "customertypecode", "donotphone", "parentaccountid",
                           "parentaccountid__type", "primarycontactid", "primarycontactid__type", "statecode",
                           "statuscode"],
               ((*r[:15], r[15], "contact" if r[15] else None, r[17], r[18]) for r in account_rows()))

        def contact_rows() -> Iterator[tuple[Any, ...]]:
            for i, c in enumerate(contacts):
                first, last = g.person()
                parent = lookup(accounts, 0.85)
                yield (c, f"{first} {last}", first, last, f"{first}.{last}.{i}@contact.test".lower(),
                       f"+1 555 {g.rng.randrange(10**6, 10**7)}", g.pick(("Buyer", "CEO", "CTO", "Engineer",
                                                                            "Purchasing Manager", "Consultant")),
                       g.pick(_CITIES), g.date(-25000, -7000), g.rng.randint(1, 2), g.rng.randint(1, 5),
                       int(g.rng.random() < 0.05), parent, "account" if parent else None, 0, 1)
        insert("contact", ["contactid", "fullname", "firstname", "lastname", "emailaddress1", "telephone1",
                           "jobtitle", "address1_city", "birthdate", "gendercode", "preferredcontactmethodcode",
                           "donotemail", "parentcustomerid", "parentcustomerid__type", "statecode", "statuscode"],
                                      contact_rows())

        def lead_rows() -> Iterator[tuple[Any, ...]]:
            for i, ld in enumerate(leads):
                first, last = g.person()
                state = g.pick((0, 0, 0, 1, 2))
                status = {0: g.pick((1, 2)), 1: 3, 2: g.pick((4, 5, 6, 7))}[state]
                acc = lookup(accounts, 0.3)
                yield (ld, f"{first} {last}", f"Interested in {g.pick(_CO_B).lower()}", first, last, g.company(),
                       f"{first}.{last}.{i}@lead.test".lower(), g.rng.randint(1, 10), g.rng.randint(1, 3),
                       float(g.rng.randrange(1000, 500000)), g.date(-30, 180), acc, "account" if acc else None,
                       state, status)
        insert("lead", ["leadid", "fullname", "subject", "firstname", "lastname", "companyname", "emailaddress1",
                        "leadsourcecode", "leadqualitycode", "estimatedvalue", "estimatedclosedate",
                        "parentaccountid", "parentaccountid__type", "statecode", "statuscode"], lead_rows())

        def opp_rows() -> Iterator[tuple[Any, ...]]:
            for o in ids["opportunity"]:
                state = g.pick((0, 0, 0, 1, 2))
                status = {0: g.pick((1, 2)), 1: 3, 2: g.pick((4, 5))}[state]
                if contacts and g.rng.random() < 0.3:
                    cust, ctype = g.pick(contacts), "contact"
                else:
                    cust, ctype = lookup(accounts, 1.0), "account"
                lead = lookup(leads, 0.3)
                yield (o, f"{g.rng.randint(5, 500)} units of {g.pick(_CO_B).lower()}", cust, ctype if cust else None,
                       float(g.rng.randrange(1000, 2_000_000)), g.rng.randint(0, 100), g.date(-60, 365),
                       g.rng.randint(1, 3), g.rng.randint(1, 4), lead, "lead" if lead else None, state, status)
        insert("opportunity", ["opportunityid", "name", "customerid", "customerid__type", "estimatedvalue",
                               "closeprobability", "estimatedclosedate", "opportunityratingcode", "salesstagecode",
                               "originatingleadid", "originatingleadid__type", "statecode", "statuscode"], opp_rows())
        regarding: list[tuple[list[str], str]] = [(accounts, "account"), (contacts, "contact"), (leads, "lead"),
                                                  (ids["opportunity"], "opportunity")]
        regarding = [r for r in regarding if r[0]]

        def activity(kind: str) -> Callable[[], Iterator[tuple[Any, ...]]]:
            def rows() -> Iterator[tuple[Any, ...]]:
                for a in ids[kind]:
                    pool, rtype = g.pick(regarding) if regarding else ([], "")
                    reg = lookup(pool, 0.9)
                    state = g.pick((0, 0, 1, 1, 1, 2))
                    if kind == "task":
                        status = {0: g.pick((2, 3, 4, 7)), 1: 5, 2: 6}[state]
                        extra: tuple[Any, ...] = (g.rng.choice((0, 25, 50, 75, 100)),)
                    else:
                        status = {0: 1, 1: g.pick((2, 4)), 2: 3}[state]
                        extra = (f"+1 555 {g.rng.randrange(10**6, 10**7)}", int(g.rng.random() < 0.6))
                    start = g.when(365)
                    yield (a, f"{g.pick(_SUBJECTS)}", start, g.rng.randint(5, 120), g.rng.randint(0, 2),
                           reg, rtype if reg else None, state, status, *extra)
            return rows
        base = ["activityid", "subject", "scheduledstart", "actualdurationminutes", "prioritycode",
                "regardingobjectid", "regardingobjectid__type", "statecode", "statuscode"]
        insert("task", base + ["percentcomplete"], activity("task")())
        insert("phonecall", base + ["phonenumber", "directioncode"], activity("phonecall")())
        pairs: set[tuple[str, str]] = set()
        if leads and ids["competitor"]:
            target = min(counts["leadcompetitors"], len(leads) * len(ids["competitor"]))
            while len(pairs) < target:
                pairs.add((g.pick(leads), g.pick(ids["competitor"])))
        org.conn.executemany("INSERT INTO leadcompetitors (leadcompetitorid, leadid, competitorid, versionnumber) "
                             "VALUES (?,?,?,?)", ((lid, p[0], p[1], org.next_version())
                                                  for lid, p in zip(ids["leadcompetitors"], sorted(pairs))))
        written["leadcompetitors"] = len(pairs)
        written["teammembership"] = len(members)
    return written
