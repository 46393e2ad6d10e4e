"""The built-in standard schema of an emulated org (tables, columns, relationships, keys, option sets).

A reduced but faithful subset of the Dataverse sales schema: names, types, option values, object
type codes and relationship schema names follow the product. Written into the org file once.
"""

from __future__ import annotations

from typing import Any

from . import tracking
from .schema import attribute, entity, key, many_to_many, one_to_many

_STATE_ACTIVE = {0: ("Active", 1, "Active"), 1: ("Inactive", 2, "Inactive")}
_STATUS_ACTIVE = {1: ("Active", 0), 2: ("Inactive", 1)}
_PRIORITY = {0: "Low", 1: "Normal", 2: "High"}
_RATING = {1: "Hot", 2: "Warm", 3: "Cold"}


class SchemaBuilder:
    """Collects entity, attribute, relationship and key definitions."""

    def __init__(self) -> None:
        self.entities: list[dict[str, Any]] = []
        self.attributes: list[dict[str, Any]] = []
        self.relationships: list[dict[str, Any]] = []
        self.keys: list[dict[str, Any]] = []
        self._columns: dict[str, int] = {}

    def attr(self, ent: str, logical: str, atype: str, **kw: Any) -> dict[str, Any]:
        n = self._columns.get(ent, 0) + 1
        self._columns[ent] = n
        a = attribute(ent, logical, atype, column_number=n, **kw)
        self.attributes.append(a)
        return a

    def table(self, logical: str, *, otc: int, primary_name: str | None, ownership: str = "UserOwned",
              pk: str | None = None, set_name: str | None = None, name_length: int = 100,
              **kw: Any) -> str:
        pk = pk or logical + "id"
        self.entities.append(entity(logical, otc=otc, primary_name=primary_name, ownership=ownership, pk=pk,
                                    set_name=set_name, **kw))
        self.attr(logical, pk, "Uniqueidentifier", is_pk=True, display=f"{logical} id")
        if kw.get("intersect"):
            self.attr(logical, "versionnumber", "BigInt", valid_create=False, valid_update=False)
            return logical
        if primary_name:
            self.attr(logical, primary_name, "String", is_primary_name=True, max_length=name_length,
                      required="ApplicationRequired")
        for col in ("createdon", "modifiedon"):
            self.attr(logical, col, "DateTime", valid_create=False, valid_update=False)
        self.attr(logical, "versionnumber", "BigInt", valid_create=False, valid_update=False)
        for col in ("createdby", "modifiedby"):
            self.lookup(logical, col, "systemuser", f"lk_{logical}base_{col}", valid_create=False, valid_update=False)
        if ownership == "UserOwned":
            self.attr(logical, "ownerid", "Owner", targets=["systemuser", "team"], required="SystemRequired")
            self.relationships.append(one_to_many(f"owner_{set_name or logical + 's'}", "owner", "ownerid",
                                                  logical, "ownerid", "ownerid"))
            self.lookup(logical, "owningbusinessunit", "businessunit", f"business_unit_{set_name or logical + 's'}",
                        valid_create=False, valid_update=False)
        return logical

    def lookup(self, ent: str, logical: str, target: str, rel: str, *, parental: bool = False,
               nav: str | None = None, **kw: Any) -> None:
        self.attr(ent, logical, "Lookup", targets=[target], **kw)
        self.relationships.append(one_to_many(rel, target, target + "id" if target != "activitypointer"
                                              else "activityid", ent, logical, nav or logical, parental=parental))

    def poly(self, ent: str, logical: str, atype: str, rels: dict[str, tuple[str, str]], *,
             parental: bool = False, **kw: Any) -> None:
        """A Customer or multi-table lookup: one relationship and navigation property per target."""
        self.attr(ent, logical, atype, targets=list(rels), **kw)
        for target, (rel, nav) in rels.items():
            self.relationships.append(one_to_many(rel, target, target + "id", ent, logical, nav, parental=parental))

    def state_status(self, ent: str, states: dict[int, tuple[str, int, str]],
                     statuses: dict[int, tuple[str, int]]) -> None:
        self.attr(ent, "statecode", "State", options=states, required="SystemRequired")
        self.attr(ent, "statuscode", "Status", options=statuses)


def build_standard_schema() -> SchemaBuilder:
    b = SchemaBuilder()
    # --- organization, business units, users, teams -------------------------------------------
    b.table("organization", otc=1019, primary_name="name", ownership="None", change_tracking=False,
            can_change_tracking=False, name_length=160)
    b.attr("organization", "expirechangetrackingindays", "Integer", min_value=0, max_value=365,
           required="SystemRequired")
    b.table("businessunit", otc=10, primary_name="name", ownership="BusinessOwned", name_length=160,
            display="Business Unit")
    b.lookup("businessunit", "parentbusinessunitid", "businessunit", "business_unit_parent_business_unit")
    b.attr("businessunit", "divisionname", "String", max_length=100)
    b.attr("businessunit", "websiteurl", "String", max_length=200, format="Url")
    b.attr("businessunit", "isdisabled", "Boolean", true_label="Disabled", false_label="Enabled")
    b.table("systemuser", otc=8, primary_name="fullname", ownership="BusinessOwned", name_length=200,
            display="User")
    for col, n in (("firstname", 64), ("lastname", 64), ("domainname", 1024), ("internalemailaddress", 100),
                   ("title", 128), ("jobtitle", 100), ("mobilephone", 64)):
        b.attr("systemuser", col, "String", max_length=n)
    b.attr("systemuser", "azureactivedirectoryobjectid", "Uniqueidentifier")
    b.attr("systemuser", "applicationid", "Uniqueidentifier")
    b.lookup("systemuser", "businessunitid", "businessunit", "business_unit_system_users", required="SystemRequired")
    b.lookup("systemuser", "parentsystemuserid", "systemuser", "user_parent_user")
    b.attr("systemuser", "isdisabled", "Boolean", true_label="Disabled", false_label="Enabled")
    b.attr("systemuser", "accessmode", "Picklist", options={0: "Read-Write", 1: "Administrative", 2: "Read",
                                                            3: "Support User", 4: "Non-interactive",
                                                            5: "Delegated Admin"}, default=0)
    b.table("team", otc=9, primary_name="name", ownership="BusinessOwned", name_length=160)
    b.lookup("team", "businessunitid", "businessunit", "business_unit_teams", required="SystemRequired")
    b.lookup("team", "administratorid", "systemuser", "lk_teambase_administratorid")
    b.attr("team", "teamtype", "Picklist", options={0: "Owner", 1: "Access", 2: "Security Group",
                                                    3: "Office Group"}, default=0)
    b.attr("team", "isdefault", "Boolean")
    b.attr("team", "azureactivedirectoryobjectid", "Uniqueidentifier")
    _intersect(b, "teammembership", 23, "teammembershipid", "systemuser", "team", "teammembership_association",
               set_name="teammemberships")

    # --- sales ----------------------------------------------------------------------------------
    b.table("account", otc=1, primary_name="name", name_length=160, has_activities=True, has_notes=True)
    for col, n in (("accountnumber", 20), ("telephone1", 50), ("fax", 50), ("emailaddress1", 100),
                   ("websiteurl", 200), ("address1_line1", 250), ("address1_city", 80),
                   ("address1_postalcode", 20), ("address1_country", 80), ("tickersymbol", 10)):
        b.attr("account", col, "String", max_length=n, format="Url" if col == "websiteurl" else "Text")
    b.attr("account", "description", "Memo", max_length=2000)
    b.attr("account", "revenue", "Money", precision=2)
    b.attr("account", "creditlimit", "Money", precision=2)
    b.attr("account", "numberofemployees", "Integer", min_value=0, max_value=1000000000)
    b.attr("account", "industrycode", "Picklist", options={
        1: "Accounting", 2: "Agriculture and Non-petrol Natural Resource Extraction",
        3: "Broadcasting Printing and Publishing", 4: "Brokers", 5: "Building Supply Retail", 6: "Business Services",
        7: "Consulting", 8: "Consumer Services", 9: "Design, Direction and Creative Management",
        10: "Distributors, Dispatchers and Processors", 11: "Doctor's Offices and Clinics",
        12: "Durable Manufacturing", 13: "Eating and Drinking Places", 14: "Entertainment Retail",
        15: "Equipment Rental and Leasing", 16: "Financial", 17: "Food and Tobacco Processing",
        18: "Inbound Capital Intensive Processing", 19: "Inbound Repair and Services", 20: "Insurance",
        21: "Legal Services", 22: "Non-Durable Merchandise Retail", 23: "Outbound Consumer Service",
        24: "Petrochemical Extraction and Distribution", 25: "Service Retail", 26: "SIG Affiliations",
        27: "Social Services", 28: "Special Outbound Trade Contractors", 29: "Specialty Realty",
        30: "Transportation", 31: "Utility Creation and Distribution", 32: "Vehicle Retail", 33: "Wholesale"})
    b.attr("account", "accountcategorycode", "Picklist", options={1: "Preferred Customer", 2: "Standard"})
    b.attr("account", "customertypecode", "Picklist", options={
        1: "Competitor", 2: "Consultant", 3: "Customer", 4: "Investor", 5: "Partner", 6: "Influencer",
        7: "Press", 8: "Prospect", 9: "Reseller", 10: "Supplier", 11: "Vendor", 12: "Other"})
    b.attr("account", "donotphone", "Boolean", true_label="Do Not Allow", false_label="Allow")
    b.attr("account", "donotemail", "Boolean", true_label="Do Not Allow", false_label="Allow")
    b.attr("account", "lastonholdtime", "DateTime")
    b.attr("account", "exchangerate", "Decimal", precision=10, min_value=0.0000000001, max_value=100000000000.0)
    b.attr("account", "address1_latitude", "Double", precision=5, min_value=-90.0, max_value=90.0)
    b.lookup("account", "parentaccountid", "account", "account_parent_account")
    b.lookup("account", "primarycontactid", "contact", "account_primary_contact")
    b.lookup("account", "originatingleadid", "lead", "account_originating_lead")
    b.state_status("account", _STATE_ACTIVE, _STATUS_ACTIVE)
    b.keys.append(key("account", "ak_accountnumber", ["accountnumber"], "Account number"))

    b.table("contact", otc=2, primary_name="fullname", name_length=160, has_activities=True, has_notes=True)
    for col, n in (("firstname", 50), ("lastname", 50), ("emailaddress1", 100), ("telephone1", 50),
                   ("mobilephone", 50), ("jobtitle", 100), ("address1_city", 80), ("address1_country", 80)):
        b.attr("contact", col, "String", max_length=n)
    b.attr("contact", "description", "Memo", max_length=2000)
    b.attr("contact", "birthdate", "DateTime", date_only=True)
    b.attr("contact", "gendercode", "Picklist", options={1: "Male", 2: "Female"})
    b.attr("contact", "preferredcontactmethodcode", "Picklist",
           options={1: "Any", 2: "Email", 3: "Phone", 4: "Fax", 5: "Mail"}, default=1)
    b.attr("contact", "donotemail", "Boolean", true_label="Do Not Allow", false_label="Allow")
    b.attr("contact", "annualincome", "Money", precision=2)
    b.poly("contact", "parentcustomerid", "Customer", {
        "account": ("contact_customer_accounts", "parentcustomerid_account"),
        "contact": ("contact_customer_contacts", "parentcustomerid_contact")}, parental=True)
    b.lookup("contact", "originatingleadid", "lead", "contact_originating_lead")
    b.state_status("contact", _STATE_ACTIVE, _STATUS_ACTIVE)
    b.keys.append(key("contact", "ak_contact_email", ["emailaddress1"], "Contact email"))

    b.table("lead", otc=4, primary_name="fullname", name_length=160, has_activities=True, has_notes=True)
    for col, n in (("subject", 300), ("firstname", 50), ("lastname", 50), ("companyname", 100),
                   ("emailaddress1", 100), ("telephone1", 50), ("jobtitle", 100), ("address1_city", 80)):
        b.attr("lead", col, "String", max_length=n)
    b.attr("lead", "description", "Memo", max_length=2000)
    b.attr("lead", "leadsourcecode", "Picklist", options={
        1: "Advertisement", 2: "Employee Referral", 3: "External Referral", 4: "Partner", 5: "Public Relations",
        6: "Seminar", 7: "Trade Show", 8: "Web", 9: "Word of Mouth", 10: "Other"})
    b.attr("lead", "leadqualitycode", "Picklist", options=_RATING, default=2)
    b.attr("lead", "estimatedvalue", "Money", precision=2)
    b.attr("lead", "estimatedclosedate", "DateTime", date_only=True)
    b.lookup("lead", "parentaccountid", "account", "lead_parent_account")
    b.lookup("lead", "parentcontactid", "contact", "lead_parent_contact")
    b.state_status("lead", {0: ("Open", 1, "Open"), 1: ("Qualified", 3, "Qualified"),
                            2: ("Disqualified", 4, "Disqualified")},
                   {1: ("New", 0), 2: ("Contacted", 0), 3: ("Qualified", 1), 4: ("Lost", 2),
                    5: ("Cannot Contact", 2), 6: ("No Longer Interested", 2), 7: ("Canceled", 2)})

    b.table("opportunity", otc=3, primary_name="name", set_name="opportunities", name_length=300,
            has_activities=True, has_notes=True, display="Opportunity", display_collection="Opportunities")
    b.attr("opportunity", "description", "Memo", max_length=2000)
    b.attr("opportunity", "estimatedvalue", "Money", precision=2)
    b.attr("opportunity", "actualvalue", "Money", precision=2)
    b.attr("opportunity", "budgetamount", "Money", precision=2)
    b.attr("opportunity", "closeprobability", "Integer", min_value=0, max_value=100)
    b.attr("opportunity", "estimatedclosedate", "DateTime", date_only=True)
    b.attr("opportunity", "actualclosedate", "DateTime", date_only=True)
    b.attr("opportunity", "opportunityratingcode", "Picklist", options=_RATING, default=2)
    b.attr("opportunity", "salesstagecode", "Picklist", options={1: "Qualify", 2: "Develop", 3: "Propose",
                                                                  4: "Close"})
    b.poly("opportunity", "customerid", "Customer", {
        "account": ("opportunity_customer_accounts", "customerid_account"),
        "contact": ("opportunity_customer_contacts", "customerid_contact")})
    b.lookup("opportunity", "parentaccountid", "account", "opportunity_parent_account")
    b.lookup("opportunity", "parentcontactid", "contact", "opportunity_parent_contact")
    b.lookup("opportunity", "originatingleadid", "lead", "opportunity_originating_lead")
    b.state_status("opportunity", {0: ("Open", 1, "Open"), 1: ("Won", 3, "Won"), 2: ("Lost", 4, "Lost")},
                   {1: ("In Progress", 0), 2: ("On Hold", 0), 3: ("Won", 1), 4: ("Canceled", 2),
                    5: ("Out-Sold", 2)})

    b.table("competitor", otc=123, primary_name="name", ownership="OrganizationOwned", name_length=100)
    b.attr("competitor", "websiteurl", "String", max_length=200, format="Url")
    b.attr("competitor", "tickersymbol", "String", max_length=10)
    b.attr("competitor", "strengths", "Memo", max_length=2000)
    b.attr("competitor", "weaknesses", "Memo", max_length=2000)
    b.attr("competitor", "reportedrevenue", "Money", precision=2)
    _intersect(b, "leadcompetitors", 24, "leadcompetitorid", "lead", "competitor", "leadcompetitors_association",
               set_name="leadcompetitorscollection")

    # --- activities -----------------------------------------------------------------------------
    regarding = {"account": "Account", "contact": "Contact", "lead": "Lead", "opportunity": "Opportunity"}
    for act, otc, plural in (("task", 4212, "Tasks"), ("phonecall", 4210, "Phonecalls")):
        b.table(act, otc=otc, primary_name="subject", pk="activityid", activity=True, name_length=200,
                display="Task" if act == "task" else "Phone Call")
        b.attr(act, "description", "Memo", max_length=2000)
        b.attr(act, "scheduledstart", "DateTime")
        b.attr(act, "scheduledend", "DateTime")
        b.attr(act, "actualdurationminutes", "Integer", min_value=0, max_value=2147483647)
        b.attr(act, "prioritycode", "Picklist", options=_PRIORITY, default=1)
        b.poly(act, "regardingobjectid", "Lookup",
               {t: (f"{cap}_{plural}", f"regardingobjectid_{t}_{act}") for t, cap in regarding.items()},
               parental=True)
        if act == "task":
            b.attr(act, "percentcomplete", "Integer", min_value=0, max_value=100)
            b.state_status(act, {0: ("Open", 2, "Open"), 1: ("Completed", 5, "Completed"),
                                 2: ("Canceled", 6, "Canceled")},
                           {2: ("Not Started", 0), 3: ("In Progress", 0), 4: ("Waiting on someone else", 0),
                            7: ("Deferred", 0), 5: ("Completed", 1), 6: ("Canceled", 2)})
        else:
            b.attr(act, "phonenumber", "String", max_length=200)
            b.attr(act, "directioncode", "Boolean", true_label="Outgoing", false_label="Incoming", default=True)
            b.state_status(act, {0: ("Open", 1, "Open"), 1: ("Completed", 2, "Completed"),
                                 2: ("Canceled", 3, "Canceled")},
                           {1: ("Open", 0), 2: ("Made", 1), 4: ("Received", 1), 3: ("Canceled", 2)})

    # --- capability discovery -------------------------------------------------------------------
    b.table("sdkmessage", otc=4606, primary_name="name", ownership="OrganizationOwned", change_tracking=False,
            can_change_tracking=False, name_length=256)
    b.attr("sdkmessage", "categoryname", "String", max_length=25)
    b.attr("sdkmessage", "isprivate", "Boolean")
    b.table("sdkmessagefilter", otc=4607, primary_name="name", ownership="OrganizationOwned",
            change_tracking=False, can_change_tracking=False, name_length=256)
    b.lookup("sdkmessagefilter", "sdkmessageid", "sdkmessage", "sdkmessageid_sdkmessagefilter")
    b.attr("sdkmessagefilter", "primaryobjecttypecode", "EntityName")
    b.attr("sdkmessagefilter", "secondaryobjecttypecode", "EntityName")
    b.attr("sdkmessagefilter", "isvisible", "Boolean", default=True)
    b.attr("sdkmessagefilter", "iscustomprocessingstepallowed", "Boolean", default=True)
    b.attr("sdkmessagefilter", "availability", "Integer")

    tracking.add_schema(b)
    return b


def _intersect(b: SchemaBuilder, name: str, otc: int, pk: str, entity1: str, entity2: str, rel: str,
               set_name: str | None = None) -> None:
    b.table(name, otc=otc, primary_name=None, ownership="None", pk=pk, intersect=True, set_name=set_name)
    b.attr(name, entity1 + "id", "Uniqueidentifier", required="SystemRequired")
    b.attr(name, entity2 + "id", "Uniqueidentifier", required="SystemRequired")
    b.relationships.append(many_to_many(rel, entity1, entity1 + "id", entity2, entity2 + "id", name))


# Messages whose sdkmessagefilter rows the org ships, and which tables get the bulk messages.
SDK_MESSAGES = ["Create", "Update", "Delete", "Retrieve", "RetrieveMultiple", "Associate", "Disassociate",
                "Assign", "Upsert", "CreateMultiple", "UpdateMultiple", "UpsertMultiple"]
BULK_MESSAGES = ("CreateMultiple", "UpdateMultiple", "UpsertMultiple")
BULK_TABLES = ("account", "contact", "lead", "opportunity", "competitor", "task", "phonecall",
               tracking.ENTITY, tracking.CONFIG_ENTITY)
