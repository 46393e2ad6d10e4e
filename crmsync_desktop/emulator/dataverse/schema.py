"""Builders for metadata JSON (EntityMetadata, AttributeMetadata, relationships, keys) and the built-in schema.

The shapes follow the Web API metadata types (dataverse-web-api.md §3.1). Metadata is *data*: what
this module builds is written into the org's SQLite file once, at ``DataverseOrg.create``; POSTed
definitions go through the same builders so standard and custom tables look alike.
"""

from __future__ import annotations

import uuid
from typing import Any

_NS = uuid.UUID("4f0c6a4e-6f1d-4d1e-9a7e-2a4c1c0d5b11")
LANG = 1033
_STAMP = "2024-01-01T00:00:00Z"

TYPE_INFO: dict[str, tuple[str, str]] = {
    # AttributeType -> (@odata.type suffix, AttributeTypeName.Value)
    "String": ("StringAttributeMetadata", "StringType"),
    "Memo": ("MemoAttributeMetadata", "MemoType"),
    "Integer": ("IntegerAttributeMetadata", "IntegerType"),
    "BigInt": ("BigIntAttributeMetadata", "BigIntType"),
    "Decimal": ("DecimalAttributeMetadata", "DecimalType"),
    "Double": ("DoubleAttributeMetadata", "DoubleType"),
    "Money": ("MoneyAttributeMetadata", "MoneyType"),
    "Boolean": ("BooleanAttributeMetadata", "BooleanType"),
    "DateTime": ("DateTimeAttributeMetadata", "DateTimeType"),
    "Picklist": ("PicklistAttributeMetadata", "PicklistType"),
    "State": ("StateAttributeMetadata", "StateType"),
    "Status": ("StatusAttributeMetadata", "StatusType"),
    "Lookup": ("LookupAttributeMetadata", "LookupType"),
    "Owner": ("LookupAttributeMetadata", "OwnerType"),
    "Customer": ("LookupAttributeMetadata", "CustomerType"),
    "Uniqueidentifier": ("UniqueIdentifierAttributeMetadata", "UniqueidentifierType"),
    "EntityName": ("EntityNameAttributeMetadata", "EntityNameType"),
}
CAST_TO_TYPES = {}
for _t, (_cast, _) in TYPE_INFO.items():
    CAST_TO_TYPES.setdefault(_cast, set()).add(_t)
# Derived types of the documented CSDL the emulator has no columns of: a cast to them is valid and
# answers an empty collection, as Dataverse does for a table without such columns (docs §3.2).
for _cast in ("MultiSelectPicklistAttributeMetadata", "BooleanAttributeMetadata", "ImageAttributeMetadata",
              "FileAttributeMetadata", "ManagedPropertyAttributeMetadata"):
    CAST_TO_TYPES.setdefault(_cast, set())
BASE_ATTRIBUTE_PROPERTIES = {
    "MetadataId", "LogicalName", "SchemaName", "EntityLogicalName", "AttributeType", "AttributeTypeName",
    "AttributeOf", "IsCustomAttribute", "IsPrimaryId", "IsPrimaryName", "IsValidForCreate", "IsValidForUpdate",
    "IsValidForRead", "IsValidODataAttribute", "IsLogical", "RequiredLevel", "SourceType", "IsSecured",
    "DisplayName", "Description", "IsManaged", "CreatedOn", "ModifiedOn", "AutoNumberFormat", "ColumnNumber",
    "HasChanged", "IntroducedVersion", "IsAuditEnabled", "IsFilterable", "IsSearchable", "IsSortableEnabled",
    "IsValidForAdvancedFind", "IsCustomizable", "IsRenameable", "DeprecatedVersion", "ExternalName",
}


def metadata_id(kind: str, name: str) -> str:
    """Deterministic ids: standard metadata has the same MetadataId in every emulated org."""
    return str(uuid.uuid5(_NS, f"{kind}:{name}"))


def label(text: str | None, kind: str = "label", key: str = "") -> dict[str, Any]:
    if text is None:
        return {"LocalizedLabels": [], "UserLocalizedLabel": None}
    loc = {"Label": text, "LanguageCode": LANG, "IsManaged": True,
           "MetadataId": metadata_id(kind, f"{key}:{text}"), "HasChanged": None}
    return {"LocalizedLabels": [loc], "UserLocalizedLabel": dict(loc)}


def label_text(value: Any) -> str | None:
    """The first localized label of a Label object (as sent by clients on POST)."""
    if not isinstance(value, dict):
        return None
    user = value.get("UserLocalizedLabel")
    if isinstance(user, dict) and user.get("Label"):
        return str(user["Label"])
    for loc in value.get("LocalizedLabels") or []:
        if isinstance(loc, dict) and loc.get("Label"):
            return str(loc["Label"])
    return None


def managed(value: Any, name: str) -> dict[str, Any]:
    return {"Value": value, "CanBeChanged": False, "ManagedPropertyLogicalName": name}


def _title(logical: str) -> str:
    return logical[:1].upper() + logical[1:]


def option(value: int, text: str, key: str, **extra: Any) -> dict[str, Any]:
    return {"Value": value, "Label": label(text, "option", key), "Description": label(None), "Color": None,
            "IsManaged": True, "ExternalValue": None, "ParentValues": [], "Tag": None, "IsHidden": False,
            "MetadataId": None, "HasChanged": None, **extra}


def attribute(entity: str, logical: str, atype: str, **kw: Any) -> dict[str, Any]:
    """One AttributeMetadata JSON object (derived-type properties included)."""
    cast, type_name = TYPE_INFO[atype]
    custom = bool(kw.get("custom", False))
    is_pk = bool(kw.get("is_pk", False))
    required = kw.get("required", "SystemRequired" if is_pk else "None")
    system = logical in SYSTEM_READONLY
    a: dict[str, Any] = {
        "@odata.type": f"#Microsoft.Dynamics.CRM.{cast}",
        "MetadataId": kw.get("metadata_id") or metadata_id("attribute", f"{entity}.{logical}"),
        "LogicalName": logical, "SchemaName": kw.get("schema") or _title(logical),
        "EntityLogicalName": entity, "AttributeType": atype, "AttributeTypeName": {"Value": type_name},
        "AttributeOf": None, "IsCustomAttribute": custom, "IsPrimaryId": is_pk,
        "IsPrimaryName": bool(kw.get("is_primary_name", False)),
        "IsValidForCreate": kw.get("valid_create", not system),
        "IsValidForUpdate": kw.get("valid_update", not system and not is_pk),
        "IsValidForRead": True, "IsValidODataAttribute": True, "IsLogical": False,
        "RequiredLevel": managed(required, "canmodifyrequirementlevelsettings"),
        "SourceType": 0, "IsSecured": False, "IsManaged": not custom, "IsFilterable": True,
        "IsSearchable": True, "IsSortableEnabled": managed(True, "canmodifyissortablesettings"),
        "IsValidForAdvancedFind": managed(True, "canmodifysearchsettings"),
        "IsCustomizable": managed(True, "iscustomizable"), "IsRenameable": managed(True, "isrenameable"),
        "IsAuditEnabled": managed(True, "canmodifyauditsettings"),
        "DisplayName": label(kw.get("display") or logical, "attrdisplay", f"{entity}.{logical}"),
        "Description": label(kw.get("description"), "attrdesc", f"{entity}.{logical}"),
        "CreatedOn": kw.get("created_on", _STAMP), "ModifiedOn": kw.get("created_on", _STAMP),
        "AutoNumberFormat": None, "ColumnNumber": kw.get("column_number", 0), "HasChanged": None,
        "IntroducedVersion": "1.0" if custom else "5.0.0.0", "DeprecatedVersion": None, "ExternalName": None,
    }
    if atype in ("String", "Memo"):
        max_length = int(kw.get("max_length", 100 if atype == "String" else 2000))
        fmt = kw.get("format", "Text" if atype == "String" else "TextArea")
        a.update({"MaxLength": max_length, "DatabaseLength": max_length * 2, "Format": fmt,
                  "FormatName": {"Value": fmt}, "ImeMode": "Auto", "IsLocalizable": False})
    elif atype == "Integer":
        a.update({"Format": "None", "MinValue": kw.get("min_value", -2147483648),
                  "MaxValue": kw.get("max_value", 2147483647)})
    elif atype == "BigInt":
        a.update({"MinValue": -9223372036854775808, "MaxValue": 9223372036854775807})
    elif atype in ("Decimal", "Double", "Money"):
        a.update({"Precision": kw.get("precision", 2), "MinValue": kw.get("min_value", -100000000000.0),
                  "MaxValue": kw.get("max_value", 100000000000.0), "ImeMode": "Auto"})
        if atype == "Money":
            a.update({"PrecisionSource": 2, "IsBaseCurrency": False, "CalculationOf": None})
    elif atype == "DateTime":
        date_only = bool(kw.get("date_only", False))
        a.update({"Format": "DateOnly" if date_only else "DateAndTime",
                  "DateTimeBehavior": {"Value": "DateOnly" if date_only else "UserLocal"},
                  "CanChangeDateTimeBehavior": managed(False, "canchangedatetimebehavior"),
                  "MinSupportedValue": "1753-01-01T00:00:00Z", "MaxSupportedValue": "9999-12-30T23:59:59Z",
                  "ImeMode": "Auto"})
    elif atype == "Boolean":
        a["DefaultValue"] = bool(kw.get("default", False))
        key = f"{entity}.{logical}"
        a["OptionSet"] = {
            "MetadataId": metadata_id("optionset", key), "Name": f"{entity}_{logical}",
            "IsGlobal": False, "IsCustomOptionSet": custom, "OptionSetType": "Boolean",
            "DisplayName": label(kw.get("display") or logical), "Description": label(None),
            "TrueOption": option(1, kw.get("true_label", "Yes"), key),
            "FalseOption": option(0, kw.get("false_label", "No"), key),
        }
    elif atype in ("Picklist", "State", "Status"):
        key = f"{entity}.{logical}"
        opts = []
        for value, spec in kw.get("options", {}).items():
            extra: dict[str, Any] = {}
            text = spec
            if atype == "State":
                text, default_status, invariant = spec
                extra = {"DefaultStatus": default_status, "InvariantName": invariant}
            elif atype == "Status":
                text, state = spec
                extra = {"State": state, "TransitionData": None}
            opts.append(option(int(value), text, key, **extra))
        a["OptionSet"] = {
            "MetadataId": metadata_id("optionset", key), "Name": f"{entity}_{logical}",
            "IsGlobal": False, "IsCustomOptionSet": custom,
            "OptionSetType": {"Picklist": "Picklist", "State": "State", "Status": "Status"}[atype],
            "DisplayName": label(kw.get("display") or logical), "Description": label(None), "Options": opts,
        }
        a["GlobalOptionSet"] = None
        if atype == "Picklist":
            a["DefaultFormValue"] = kw.get("default", -1)
        if atype == "State":
            a["DefaultFormValue"] = None
    elif atype in ("Lookup", "Owner", "Customer"):
        a.update({"Targets": list(kw["targets"]), "Format": None})
    return a


# Columns the platform maintains; clients cannot write them.
SYSTEM_READONLY = {"versionnumber", "createdon", "modifiedon", "createdby", "modifiedby", "owningbusinessunit"}


def entity(logical: str, **kw: Any) -> dict[str, Any]:
    custom = bool(kw.get("custom", False))
    schema = kw.get("schema") or _title(logical)
    set_name = kw.get("set_name") or (logical + "s")
    display = kw.get("display") or schema
    return {
        "MetadataId": kw.get("metadata_id") or metadata_id("entity", logical),
        "LogicalName": logical, "SchemaName": schema, "EntitySetName": set_name,
        "LogicalCollectionName": kw.get("collection") or set_name, "CollectionSchemaName": schema + "s",
        "DisplayName": label(display, "entdisplay", logical),
        "DisplayCollectionName": label(kw.get("display_collection") or display + "s", "entcoll", logical),
        "Description": label(kw.get("description"), "entdesc", logical),
        "PrimaryIdAttribute": kw.get("pk") or logical + "id",
        "PrimaryNameAttribute": kw.get("primary_name"), "PrimaryImageAttribute": None,
        "ObjectTypeCode": kw["otc"], "IsCustomEntity": custom, "IsManaged": not custom,
        "OwnershipType": kw.get("ownership", "UserOwned"),
        "ChangeTrackingEnabled": bool(kw.get("change_tracking", True)),
        "CanChangeTrackingBeEnabled": managed(bool(kw.get("can_change_tracking", True)), "canchangetrackingbeenabled"),
        "IsIntersect": bool(kw.get("intersect", False)), "IsActivity": bool(kw.get("activity", False)),
        "IsOptimisticConcurrencyEnabled": True, "IsValidForAdvancedFind": not kw.get("intersect", False),
        "CanCreateAttributes": managed(not kw.get("intersect", False), "cancreateattributes"),
        "IsCustomizable": managed(True, "iscustomizable"), "HasActivities": bool(kw.get("has_activities", False)),
        "HasNotes": bool(kw.get("has_notes", False)), "TableType": "Standard", "IsLogicalEntity": False,
        "IsPrivate": False, "IsAuditEnabled": managed(False, "canmodifyauditsettings"),
        "IntroducedVersion": "1.0" if custom else "5.0.0.0", "CreatedOn": kw.get("created_on", _STAMP),
        "ModifiedOn": kw.get("created_on", _STAMP), "EntityColor": None, "HasChanged": None,
        "IsBPFEntity": False, "IsRetrieveAuditEnabled": False, "IsRetrieveMultipleAuditEnabled": False,
    }


CASCADE_DEFAULT = {"Assign": "NoCascade", "Delete": "RemoveLink", "Merge": "NoCascade",
                   "Reparent": "NoCascade", "Share": "NoCascade", "Unshare": "NoCascade",
                   "Archive": "NoCascade", "RollupView": "NoCascade"}
CASCADE_PARENTAL = {"Assign": "Cascade", "Delete": "Cascade", "Merge": "Cascade", "Reparent": "Cascade",
                    "Share": "Cascade", "Unshare": "Cascade", "Archive": "Cascade", "RollupView": "NoCascade"}


def one_to_many(schema: str, referenced: str, referenced_attr: str, referencing: str, referencing_attr: str,
                nav: str, *, custom: bool = False, parental: bool = False,
                cascade: dict[str, str] | None = None, referenced_nav: str | None = None) -> dict[str, Any]:
    return {
        "@odata.type": "#Microsoft.Dynamics.CRM.OneToManyRelationshipMetadata",
        "MetadataId": metadata_id("relationship", schema), "SchemaName": schema,
        "RelationshipType": "OneToManyRelationship", "ReferencedEntity": referenced,
        "ReferencedAttribute": referenced_attr, "ReferencingEntity": referencing,
        "ReferencingAttribute": referencing_attr,
        "ReferencedEntityNavigationPropertyName": referenced_nav or schema,
        "ReferencingEntityNavigationPropertyName": nav, "IsCustomRelationship": custom,
        "IsManaged": not custom, "IsValidForAdvancedFind": True, "IsHierarchical": False,
        "IsCustomizable": managed(True, "iscustomizable"), "SecurityTypes": "ParentChild" if parental else "None",
        "IntroducedVersion": "1.0" if custom else "5.0.0.0", "HasChanged": None,
        "CascadeConfiguration": dict(cascade or (CASCADE_PARENTAL if parental else CASCADE_DEFAULT)),
        "AssociatedMenuConfiguration": {"Behavior": "UseCollectionName", "Group": "Details", "Label": label(None),
                                        "Order": 10000},
        "RelationshipBehavior": 0,
    }


def many_to_many(schema: str, entity1: str, attr1: str, entity2: str, attr2: str, intersect: str,
                 *, custom: bool = False, nav1: str | None = None, nav2: str | None = None) -> dict[str, Any]:
    menu = {"Behavior": "UseLabel", "Group": "Details", "Label": label(None), "Order": 10000}
    return {
        "@odata.type": "#Microsoft.Dynamics.CRM.ManyToManyRelationshipMetadata",
        "MetadataId": metadata_id("relationship", schema), "SchemaName": schema,
        "RelationshipType": "ManyToManyRelationship", "Entity1LogicalName": entity1,
        "Entity2LogicalName": entity2, "IntersectEntityName": intersect, "Entity1IntersectAttribute": attr1,
        "Entity2IntersectAttribute": attr2, "Entity1NavigationPropertyName": nav1 or schema,
        "Entity2NavigationPropertyName": nav2 or schema, "IsCustomRelationship": custom, "IsManaged": not custom,
        "IsValidForAdvancedFind": True, "IsCustomizable": managed(True, "iscustomizable"),
        "SecurityTypes": "None", "IntroducedVersion": "1.0" if custom else "5.0.0.0", "HasChanged": None,
        "Entity1AssociatedMenuConfiguration": dict(menu), "Entity2AssociatedMenuConfiguration": dict(menu),
    }


def key(entity_name: str, schema: str, attributes: list[str], display: str) -> dict[str, Any]:
    return {
        "MetadataId": metadata_id("key", f"{entity_name}.{schema}"), "LogicalName": schema.lower(),
        "SchemaName": schema, "EntityLogicalName": entity_name, "KeyAttributes": list(attributes),
        "DisplayName": label(display), "EntityKeyIndexStatus": "Active", "IsManaged": False,
        "IsCustomizable": managed(True, "iscustomizable"), "IntroducedVersion": "1.0", "HasChanged": None,
        "AsyncJob": None, "IsSynchronous": True,
    }
