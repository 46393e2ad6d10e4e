"""The Edit Filter dialog over a real engine: tree editing, FetchXML both ways, validation, preview, files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from PySide6.QtWidgets import QComboBox, QStyleOptionViewItem

from crmsync_desktop.sync.filters import FilterType, parse_filter
from crmsync_desktop.ui.models.filter_tree_model import ConditionNode, FilterTreeModel, GroupNode, ScopeNode
from crmsync_desktop.views.filter_editor import FilterEditorDialog
from crmsync_desktop.views.filter_editor_delegate import FilterItemDelegate, ValueEditor
from tests.ui.test_transactions_model import until
from tests.views.test_jobs_view import PROFILE, EngineRig, connect_and_enable, open_engine_rig, seed_accounts

INACTIVE_OR_PRAGUE = """<fetch version="1.0">
  <entity name="account">
    <filter type="or">
      <condition attribute="statecode" operator="eq" value="1" />
      <condition attribute="address1_city" operator="like" value="Pra%" />
    </filter>
    <link-entity name="contact" from="contactid" to="primarycontactid" link-type="outer" alias="pc">
      <filter type="and">
        <condition attribute="lastname" operator="not-null" />
      </filter>
    </link-entity>
  </entity>
</fetch>"""


@pytest.fixture
def engine_rig(tmp_path: Path, qloop) -> Iterator[EngineRig]:  # type: ignore[no-untyped-def]
    yield from open_engine_rig(tmp_path)


@pytest.fixture
def open_editor(qtbot, qloop, engine_rig: EngineRig):  # type: ignore[no-untyped-def]
    seed_accounts(engine_rig.server, 25)
    qloop.run_until_complete(connect_and_enable(engine_rig, "account"))

    def make(xml: str = "", entity: str = "account") -> FilterEditorDialog:
        dialog = FilterEditorDialog(engine_rig.engine, PROFILE, entity, "sync", xml)
        qtbot.addWidget(dialog)
        dialog.open()
        qloop.run_until_complete(until(lambda: dialog.model.catalog.loaded))
        return dialog

    return make


def cell(dialog: FilterEditorDialog, node, column: int):  # type: ignore[no-untyped-def]
    return dialog.model.index_of(node, column)


def test_build_a_filter_through_the_tree(open_editor, qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    dialog = open_editor()
    assert dialog.model.data(dialog.model.index(0, 2)) == "All records"
    assert dialog.xml == ""
    model = dialog.model

    status = dialog.add_condition("statecode")
    assert isinstance(status, ConditionNode) and status.operator == "eq"
    assert not dialog.save_button.isEnabled()  # eq needs a value
    assert "needs exactly one value" in dialog.problems_label.text()
    model.setData(cell(dialog, status, 2), ["1"])
    assert model.data(cell(dialog, status, 0)) == "Status (statecode)"
    assert model.data(cell(dialog, status, 2)) == "Inactive"
    assert '<condition attribute="statecode" operator="eq" value="1" />' in dialog.xml_edit.toPlainText()
    assert dialog.save_button.isEnabled() and "valid" in dialog.problems_label.text()

    # operators by type family: a choice offers eq/in, never like; "in" edits with checkboxes
    delegate = dialog.tree.itemDelegate()
    assert isinstance(delegate, FilterItemDelegate)
    combo = delegate.createEditor(dialog.tree.viewport(), QStyleOptionViewItem(), cell(dialog, status, 1))
    assert isinstance(combo, QComboBox)
    offered = [combo.itemData(i) for i in range(combo.count())]
    assert "in" in offered and "like" not in offered and "last-x-days" not in offered
    model.setData(cell(dialog, status, 1), "in")
    assert status.values == ["1"]
    editor = delegate.createEditor(dialog.tree.viewport(), QStyleOptionViewItem(), cell(dialog, status, 2))
    assert isinstance(editor, ValueEditor) and editor.list is not None
    assert [editor.list.item(i).text() for i in range(editor.list.count())] == ["Active (0)", "Inactive (1)"]
    delegate.setEditorData(editor, cell(dialog, status, 2))
    assert editor.values() == ["1"]
    editor.deleteLater()
    combo.deleteLater()
    model.setData(cell(dialog, status, 1), "eq")

    dialog.select_node(model.root)
    city = dialog.add_condition("address1_city")
    assert city.operator == "like"
    model.setData(cell(dialog, city, 2), ["Pra%"])
    dialog.tree.selectionModel().clearSelection()
    for node in (status, city):
        dialog.tree.selectionModel().select(cell(dialog, node, 0),
                                            dialog.tree.selectionModel().SelectionFlag.Select
                                            | dialog.tree.selectionModel().SelectionFlag.Rows)
    assert dialog.group_or_action.isEnabled()
    dialog.group_or_action.trigger()
    group = model.root.children[0]
    assert isinstance(group, GroupNode) and group.type is FilterType.OR and group.children == [status, city]
    parsed = parse_filter(dialog.xml_edit.toPlainText())
    assert parsed.filter is not None and parsed.filter.groups[0].type is FilterType.OR
    assert "Status = Inactive or Address 1: City is like 'Pra%'" in dialog.summary_label.text()
    qtmodeltester.check(model, force_py=True)

    dialog.select_node(group)
    dialog.and_or_action.trigger()
    assert group.type is FilterType.AND
    dialog.ungroup_action.trigger()
    assert model.root.children == [status, city]
    dialog.select_node(city)
    dialog.delete_action.trigger()
    assert model.root.children == [status]


def test_links_from_relationships(open_editor) -> None:  # type: ignore[no-untyped-def]
    dialog = open_editor()
    options = {o.description: o for o in dialog.link_options()}
    parent_contact = options["Contact — parent through Primary Contact"]
    assert "Contact — children through their Company Name" in options
    link = dialog.add_link(parent_contact)
    assert isinstance(link, ScopeNode) and link.is_link
    dialog.select_node(link)
    lastname = dialog.add_condition("lastname")
    dialog.model.setData(cell(dialog, lastname, 1), "not-null")
    xml = dialog.xml_edit.toPlainText()
    assert '<link-entity name="contact" from="contactid" to="primarycontactid" link-type="inner">' in xml
    assert '<condition attribute="lastname" operator="not-null" />' in xml
    dialog.model.setData(cell(dialog, link, 1), "outer")
    assert 'link-type="outer"' in dialog.xml_edit.toPlainText()
    assert dialog.model.data(cell(dialog, link, 2)) == "contact.contactid = account.primarycontactid"


def test_fetchxml_tab_round_trips_both_ways(open_editor) -> None:  # type: ignore[no-untyped-def]
    dialog = open_editor()
    dialog.tabs.setCurrentIndex(1)
    dialog.xml_edit.setPlainText(INACTIVE_OR_PRAGUE)
    assert dialog.apply_xml_text()
    root = dialog.model.root
    assert root.type is FilterType.OR and len(root.items) == 2 and len(root.links) == 1
    assert root.links[0].alias == "pc" and root.links[0].children[0].operator == "not-null"
    assert dialog.model.fetch_filter() == parse_filter(INACTIVE_OR_PRAGUE)
    assert dialog.xml == INACTIVE_OR_PRAGUE  # canonical in, canonical out
    dialog.model.setData(dialog.model.index_of(root.items[1], 2), ["Brno"])  # the tree edits the XML back
    assert 'value="Brno"' in dialog.xml_edit.toPlainText()
    assert dialog.problems == []


def test_invalid_xml_shows_a_message_and_keeps_the_last_valid_tree(open_editor) -> None:  # type: ignore[no-untyped-def]
    dialog = open_editor(INACTIVE_OR_PRAGUE)
    before = dialog.model.fetch_filter()
    dialog.xml_edit.setPlainText(INACTIVE_OR_PRAGUE.replace('operator="like"', 'operator="sounds-like"'))
    assert not dialog.apply_xml_text()
    assert dialog.problems_label.text().startswith("FetchXML:")
    assert "sounds-like" in dialog.problems_label.text()
    assert dialog.model.fetch_filter() == before
    assert not dialog.save_button.isEnabled() and not dialog.preview_button.isEnabled()
    dialog.xml_edit.setPlainText("<fetch><entity name='account'><filter>")  # not even XML
    assert not dialog.apply_xml_text() and dialog.model.fetch_filter() == before
    dialog.xml_edit.setPlainText(INACTIVE_OR_PRAGUE.replace("address1_city", "address1_town"))
    assert dialog.apply_xml_text()  # well-formed, but the schema has no such column
    assert "unknown column 'address1_town'" in dialog.problems_label.text()
    assert "did you mean 'address1_city'" in dialog.problems_label.text()
    assert not dialog.save_button.isEnabled()


def test_preview_shows_count_and_sample(open_editor, qloop) -> None:  # type: ignore[no-untyped-def]
    dialog = open_editor('<fetch><entity name="account"><filter><condition attribute="statecode" operator="eq" '
                         'value="1"/></filter></entity></fetch>')
    dialog.preview_button.click()
    assert dialog.preview_busy.isVisibleTo(dialog) and not dialog.preview_button.isEnabled()
    qloop.run_until_complete(until(lambda: "match" in dialog.preview_count.text()))
    assert "<b>7</b> server records match this filter" in dialog.preview_count.text()
    sample = [dialog.preview_sample.item(i).text() for i in range(dialog.preview_sample.count())]
    assert 1 <= len(sample) <= 10 and all(s.startswith("Account ") for s in sample)
    assert not dialog.preview_busy.isVisibleTo(dialog) and dialog.preview_button.isEnabled()
    dialog.clear()
    assert dialog.xml == "" and "All records" in dialog.summary_label.text()
    dialog.preview_button.click()
    qloop.run_until_complete(until(lambda: "match all records" in dialog.preview_count.text()))
    assert "<b>25</b>" in dialog.preview_count.text()


def test_import_export_and_save(open_editor, qloop, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    dialog = open_editor(INACTIVE_OR_PRAGUE)
    out = tmp_path / "account-filter.xml"
    qloop.run_until_complete(dialog.export_xml_file(out))
    assert parse_filter(out.read_text()) == parse_filter(INACTIVE_OR_PRAGUE)

    other = tmp_path / "cities.xml"
    other.write_text('<fetch><entity name="account"><filter><condition attribute="address1_city" operator="in">'
                     '<value>Brno</value><value>Vienna</value></condition></filter></entity></fetch>')
    qloop.run_until_complete(dialog.import_xml_file(other))
    assert [c.values for c in dialog.model.root.items] == [["Brno", "Vienna"]]
    assert 'Imported cities.xml' in dialog.status_label.text()

    wrong = tmp_path / "contact.xml"
    wrong.write_text('<fetch><entity name="contact" /></fetch>')
    qloop.run_until_complete(dialog.import_xml_file(wrong))
    assert "attached to 'account'" in dialog.problems_label.text()
    assert [c.values for c in dialog.model.root.items] == [["Brno", "Vienna"]]  # unchanged

    dialog.xml_edit.setPlainText(render := dialog.xml)
    assert dialog.apply_xml_text() and render
    saved: list[str] = []
    dialog.accepted_xml.connect(saved.append)
    dialog.save_button.click()
    assert saved == [dialog.xml] and 'operator="in"' in saved[0]
    assert not dialog.isVisible()


def test_all_records_saves_the_empty_filter(open_editor) -> None:  # type: ignore[no-untyped-def]
    dialog = open_editor(INACTIVE_OR_PRAGUE)
    dialog.clear_action.trigger()
    saved: list[str] = []
    dialog.accepted_xml.connect(saved.append)
    dialog.save()
    assert saved == [""]


def test_tree_model_without_metadata_passes_the_model_tester(qtmodeltester) -> None:  # type: ignore[no-untyped-def]
    model = FilterTreeModel("account")
    model.set_filter(parse_filter(INACTIVE_OR_PRAGUE))
    assert model.rowCount() == 1 and model.rowCount(model.index(0, 0)) == 3
    assert model.data(model.index(0, 0)) == "account"
    qtmodeltester.check(model, force_py=True)
