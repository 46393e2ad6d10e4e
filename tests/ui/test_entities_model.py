"""Entity grid, field picker and report models: Qt model contract, editing, dirty tracking, presentation."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from PySide6.QtCore import Qt

from crmsync_desktop.domain import ConflictPolicy, DeletionStrategy, EntityConfig, RunStatus
from crmsync_desktop.sync.engine import EntityStatus, RunResult
from crmsync_desktop.sync.metadata import locked_fields
from crmsync_desktop.sync.metadata.schema import Schema
from crmsync_desktop.sync.upload.conflicts import POLICY_LABELS
from crmsync_desktop.sync.verify import EntityDifferences, VerifyReport
from crmsync_desktop.ui.models.entities_model import (
    CHOICE_TIPS_ROLE,
    CHOICES_ROLE,
    CONFIG_ROLE,
    SORT_ROLE,
    Column,
    DeletionChoice,
    EntitiesModel,
)
from crmsync_desktop.ui.models.fields_model import FieldsModel
from crmsync_desktop.ui.models.report_models import (
    DRY_RUN_HEADERS,
    ReportTableModel,
    rows_for_dry_run,
    rows_for_verify,
)
from tests.fakes.memory_org import sales_schema

OWNER_FILTER = ('<fetch><entity name="account"><filter><condition attribute="ownerid" operator="eq-userid"/>'
                "</filter></entity></fetch>")


def _schema() -> Schema:
    entities, relationships = sales_schema()
    return Schema.of(entities, relationships)


def _status(name: str, **config: object) -> EntityStatus:
    schema = _schema()
    meta = schema.entity(name)
    ct = bool(meta and meta.change_tracking)
    return EntityStatus(
        config=EntityConfig(name, **config),  # type: ignore[arg-type]
        display_name=(meta.label if meta else "") or name,
        change_detection="change tracking" if ct else "watermark",
        resolved_deletion=DeletionStrategy.OFF,
        last_sync_at=datetime(2026, 1, 2, 3, 4, tzinfo=UTC) if name == "account" else None,
        records_held=1234 if name == "account" else 0,
        waiting_retries=2 if name == "contact" else 0,
    )


def _model(qtbot) -> EntitiesModel:  # type: ignore[no-untyped-def]
    model = EntitiesModel()
    names = [e.logical_name for e in _schema().entities]
    model.set_entities([_status(n, enabled=n == "account") for n in names], _schema())
    return model


def test_model_contract(qtmodeltester, qtbot) -> None:  # type: ignore[no-untyped-def]
    model = _model(qtbot)
    qtmodeltester.check(model, force_py=True)
    fields = FieldsModel(_schema().entity("account").fields, (), {"accountid": "the primary key"})
    qtmodeltester.check(fields, force_py=True)
    report = ReportTableModel(DRY_RUN_HEADERS, rows_for_dry_run({"account": {"created": 3}}, {}))
    qtmodeltester.check(report, force_py=True)


def test_edits_are_tracked_and_discarded(qtbot) -> None:  # type: ignore[no-untyped-def]
    model = _model(qtbot)
    row = model.row_of("contact")
    enabled = model.index(row, Column.ENABLED)
    with qtbot.waitSignal(model.dirty_changed) as first:
        assert model.setData(enabled, Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    assert first.args == [True]
    assert model.is_dirty and [c.logical_name for c in model.dirty_configs()] == ["contact"]
    name = model.data(model.index(row, Column.DISPLAY_NAME))
    assert name.startswith("● ")
    assert model.data(model.index(row, Column.DISPLAY_NAME), Qt.ItemDataRole.FontRole).bold()
    assert "enabled" in model.data(model.index(row, Column.DISPLAY_NAME), Qt.ItemDataRole.ToolTipRole)
    # undoing the edit by hand clears the dirty state too
    with qtbot.waitSignal(model.dirty_changed) as back:
        model.setData(enabled, Qt.CheckState.Unchecked, Qt.ItemDataRole.CheckStateRole)
    assert back.args == [False]
    model.update_config("lead", sync_filter=OWNER_FILTER)
    model.discard_changes()
    assert not model.is_dirty


def test_deletion_choices_map_to_the_configuration(qtbot) -> None:  # type: ignore[no-untyped-def]
    model = _model(qtbot)
    row = model.row_of("account")
    cell = model.index(row, Column.DELETION)
    assert model.data(cell) == "Off"
    # Sync Deletion on = Auto, resolved to the table's change tracking (sales accounts have it)
    model.setData(model.index(row, Column.SYNC_DELETION), Qt.CheckState.Checked.value, Qt.ItemDataRole.CheckStateRole)
    config = model.data(cell, CONFIG_ROLE)
    assert config.sync_deletion and config.deletion_strategy is DeletionStrategy.OFF
    assert model.data(cell) == "Auto → change tracking"
    assert model.setData(cell, DeletionChoice.SWEEP.value)
    assert model.row_at(row).config.deletion_strategy is DeletionStrategy.SWEEP
    assert model.data(cell) == "Sweep"
    assert model.setData(cell, "off")
    assert not model.row_at(row).config.sync_deletion
    assert not model.setData(cell, "nonsense")
    # tracking records are offered only when the server has resco_mobiletracking
    offered = [c for c, _ in model.choices(row)]
    assert DeletionChoice.TRACKING not in offered and DeletionChoice.CHANGE_TRACKING in offered


def test_presentation(qtbot) -> None:  # type: ignore[no-untyped-def]
    model = _model(qtbot)
    account = model.row_of("account")
    assert model.data(model.index(account, Column.RECORDS)) == "1,234"
    assert model.data(model.index(account, Column.RECORDS), SORT_ROLE) == 1234
    assert model.data(model.index(account, Column.SYNC_FILTER)) == "All records"
    assert model.data(model.index(account, Column.FIELDS)).startswith("All (")
    assert model.data(model.index(model.row_of("contact"), Column.RETRIES)) == "2"
    assert model.data(model.index(model.row_of("contact"), Column.LAST_SYNC)) == "never"
    model.update_config("account", sync_filter=OWNER_FILTER, fields=("accountid", "name"))
    assert "current user" in model.data(model.index(account, Column.SYNC_FILTER))
    assert model.data(model.index(account, Column.FIELDS)).startswith("2 of ")
    model.update_config("account", upload_filter="<fetch><entity")
    assert model.data(model.index(account, Column.UPLOAD_FILTER)).startswith("⚠ Invalid filter")
    intersect = next(i for i in range(model.rowCount()) if model.row_at(i).is_intersect)
    assert "N:N" in model.data(model.index(intersect, Column.DISPLAY_NAME))
    assert model.data(model.index(intersect, Column.DISPLAY_NAME), Qt.ItemDataRole.FontRole).italic()


def test_select_rows(qtbot) -> None:  # type: ignore[no-untyped-def]
    model = _model(qtbot)
    model.set_enabled(range(model.rowCount()), True)
    assert all(c.enabled for c in model.configs())
    model.set_enabled([model.row_of("lead")], False)
    assert not model.row_at(model.row_of("lead")).config.enabled


def test_fields_model_keeps_locked_fields() -> None:
    meta = _schema().entity("account")
    assert meta is not None
    locked = locked_fields(meta, [OWNER_FILTER])
    model = FieldsModel(meta.fields, (), locked)
    assert model.selected() == ()  # every field
    model.set_checked(range(model.rowCount()), False)
    assert set(model.selected()) == set(locked) and "accountid" in locked and "ownerid" in locked
    pk = next(i for i in range(model.rowCount()) if model.field_at(i).logical_name == "accountid")
    assert not model.setData(model.index(pk, 0), Qt.CheckState.Unchecked.value, Qt.ItemDataRole.CheckStateRole)
    assert not model.flags(model.index(pk, 0)) & Qt.ItemFlag.ItemIsUserCheckable
    assert "primary key" in model.data(model.index(pk, 4))


def test_report_rows() -> None:
    report = VerifyReport((EntityDifferences("account", 10, 9, 1, 0, 0, 2, ("abc",)),
                           EntityDifferences("contact", 5, 5, 0, 0, 0, 0)))
    rows = rows_for_verify(report)
    assert rows[0].cells[1] == "1 difference(s)" and rows[0].problem
    assert rows[1].cells[1] == "In sync" and not rows[1].problem
    result = RunResult(1, RunStatus.SUCCEEDED, "3 created", {"account": {"created": 3, "read": 3}})
    dry = rows_for_dry_run(result.counts, {("account", "create"): ["a", "b"]})
    assert dry[0].cells[:4] == ("account", 3, 0, 0) and "create: a, b" in dry[0].cells[-1]
    model = ReportTableModel(DRY_RUN_HEADERS, dry)
    assert model.data(model.index(0, 1)) == "3"
    assert replace(dry[0], problem=True).problem


def test_conflicts_column_shows_and_edits_the_policy(qtbot) -> None:  # type: ignore[no-untyped-def]
    model = EntitiesModel()
    names = [e.logical_name for e in _schema().entities]
    model.set_entities([_status(n, conflict_policy=ConflictPolicy.NEWER_WINS if n == "contact"
                                else ConflictPolicy.SERVER_WINS) for n in names], _schema())
    assert model.headerData(Column.CONFLICTS, Qt.Orientation.Horizontal) == "Conflicts"
    contact = model.index(model.row_of("contact"), Column.CONFLICTS)
    assert model.data(contact) == POLICY_LABELS[ConflictPolicy.NEWER_WINS] == "Newer wins"
    assert model.data(contact, Qt.ItemDataRole.EditRole) == "newer_wins"
    assert model.data(contact, Qt.ItemDataRole.ToolTipRole).startswith("Newer wins: The later modification wins")
    assert model.flags(contact) & Qt.ItemFlag.ItemIsEditable
    choices = model.data(contact, CHOICES_ROLE)
    assert [p for p, _ in choices] == [ConflictPolicy.SERVER_WINS, ConflictPolicy.CLIENT_WINS,
                                       ConflictPolicy.CLIENT_WINS_FULL, ConflictPolicy.NEWER_WINS,
                                       ConflictPolicy.MANUAL]
    assert dict(choices)[ConflictPolicy.CLIENT_WINS_FULL] == "Client wins (full)"
    tips = model.data(contact, CHOICE_TIPS_ROLE)
    assert set(tips) == {p.value for p in ConflictPolicy}
    assert all(tip and "\n" not in tip for tip in tips.values())
    assert "client" in tips["server_wins"].lower() and "server" in tips["server_wins"].lower()

    with qtbot.waitSignal(model.dirty_changed) as dirty:
        assert model.setData(contact, ConflictPolicy.MANUAL.value)
    assert dirty.args == [True]
    assert model.row_at(contact.row()).config.conflict_policy is ConflictPolicy.MANUAL
    assert [c.logical_name for c in model.dirty_configs()] == ["contact"]
    assert model.data(contact) == "Manual"
    assert model.data(contact, Qt.ItemDataRole.FontRole).bold()
    name_tip = model.data(model.index(contact.row(), Column.DISPLAY_NAME), Qt.ItemDataRole.ToolTipRole)
    assert "Unsaved changes: conflict policy." in name_tip
    assert not model.setData(contact, "ask")  # not a policy: refused, nothing changes
    assert model.row_at(contact.row()).config.conflict_policy is ConflictPolicy.MANUAL
    assert model.data(model.index(model.row_of("account"), Column.CONFLICTS)) == "Server wins"
    model.discard_changes()
    assert model.data(contact) == "Newer wins" and not model.is_dirty


def test_conflicts_do_not_apply_to_intersect_entities(qtbot) -> None:  # type: ignore[no-untyped-def]
    model = _model(qtbot)
    row = next(i for i in range(model.rowCount()) if model.row_at(i).is_intersect)
    cell = model.index(row, Column.CONFLICTS)
    assert not model.conflicts_apply(row)
    assert not model.flags(cell) & Qt.ItemFlag.ItemIsEditable
    assert model.flags(cell) & Qt.ItemFlag.ItemIsSelectable  # the row stays selectable as a whole
    assert model.data(cell) == "Server wins"  # the stored value, greyed
    assert model.data(cell, Qt.ItemDataRole.ForegroundRole) is not None
    assert "never conflict" in model.data(cell, Qt.ItemDataRole.ToolTipRole)
    assert not model.setData(cell, ConflictPolicy.MANUAL.value)
    assert not model.is_dirty
    account = model.index(model.row_of("account"), Column.CONFLICTS)
    assert model.data(account, Qt.ItemDataRole.ForegroundRole) is None
