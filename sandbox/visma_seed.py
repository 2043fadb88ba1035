"""The seed company of the Visma emulator: a Nordic chart of accounts, dimensions, customers, suppliers, documents."""
from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from django.db import transaction

from .models import VismaClient, VismaDocument
from .visma_periods import COLLECTION as FINANCIAL_PERIODS
from .visma_periods import financial_periods_seed_rows
from .visma_erp import (
    customer_body,
    customer_invoice_create,
    journal_create,
    supplier_body,
    supplier_invoice_create,
)
from .visma_store import (
    visma_datetime_format,
    visma_document_find,
    visma_etag_new,
    visma_number_at_least,
)

VISMA_SANDBOX_COMPANY_ID = "1234567"
VISMA_SANDBOX_TENANT_ID = "5c1a4d3e-8f2b-4e6a-9d7c-0b1e2f3a4b5c"
VISMA_SANDBOX_CLIENT_ID = "ml-connector-sandbox"
VISMA_SANDBOX_CLIENT_SECRET = "sandbox-client-secret"
VISMA_SANDBOX_CUSTOMER_COUNT = 250

# Fixed moments, so delta filters in tests select exact, known sets.
ACCOUNTS_MODIFIED = datetime(2025, 12, 1, 9, 0, tzinfo=UTC)
CUSTOMERS_FIRST_MODIFIED = datetime(2026, 1, 5, 8, 0, tzinfo=UTC)
CUSTOMERS_MODIFIED_STEP = timedelta(hours=3)
SUPPLIERS_FIRST_MODIFIED = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)
OPENING_BALANCE_POSTED = datetime(2026, 1, 2, 7, 0, tzinfo=UTC)

# AccountDto.controlAccountModule (swagger): the receivable and payable are the AR and AP control accounts.
CONTROL_ACCOUNTS = {"1510": "AR", "2440": "AP"}

# (account, description, type, active, cash account)
ACCOUNTS = [
    ("1510", "Accounts receivable", "Asset", True, False),
    ("1580", "PayPal clearing", "Asset", True, False),
    ("1581", "Stripe clearing", "Asset", True, False),
    ("1582", "Square clearing", "Asset", True, False),
    ("1590", "Disputed payments held by processors", "Asset", True, False),
    ("1920", "Bank", "Asset", True, True),
    ("2081", "Share capital", "Liability", True, False),
    ("2440", "Accounts payable", "Liability", True, False),
    ("2611", "Output VAT 25%", "Liability", True, False),
    ("2960", "Tips owed to staff", "Liability", True, False),
    ("3000", "Sales", "Income", True, False),
    ("3010", "Sales EU", "Income", True, False),
    ("3020", "Sales in stores", "Income", True, False),
    ("3099", "Old sales", "Income", False, False),
    ("4010", "Purchases", "Expense", True, False),
    ("6110", "Office supplies", "Expense", True, False),
    ("6540", "IT services", "Expense", True, False),
    ("7770", "Payment fees", "Expense", True, False),
    ("7960", "Exchange differences", "Expense", True, False),
]
ACCOUNT_CLASSES = {"Asset": "ASSETS", "Liability": "LIABILITIES", "Income": "INCOME", "Expense": "EXPENSES"}

# (segment id, description, length, [(value, description, active)])
SUBACCOUNT_SEGMENTS = [
    (1, "Department", 3, [("100", "Sales", True), ("200", "Support", True), ("900", "Closed department", False),
                          # Square stores (issue 10): each location's cost center; Trondheim is closed.
                          ("310", "Store Oslo Sentrum", True), ("320", "Store Bergen", True),
                          ("330", "Web shop", True), ("390", "Store Trondheim (closed)", False)]),
    (2, "Project", 5, [("P-100", "Webshop", True), ("P-200", "Marketplace", True)]),
]

# (number, name, country, city, currency, email, status)
NAMED_CUSTOMERS = [
    ("10001", "Nordic Outdoor AB", "SE", "Stockholm", "SEK", "orders@nordic-outdoor.example", "Active"),
    ("10002", "Fjordline Sport AS", "NO", "Bergen", "NOK", "post@fjordline-sport.example", "Active"),
    ("10003", "Skagen Cykler ApS", "DK", "Aarhus", "DKK", "mail@skagen-cykler.example", "Active"),
    ("10004", "Helsinki Trail Oy", "FI", "Helsinki", "EUR", "info@helsinki-trail.example", "Active"),
    ("10005", "Baltic Gear GmbH", "DE", "Hamburg", "EUR", "kontakt@baltic-gear.example", "Active"),
    ("10006", "Old Harbour Trading AB", "SE", "Malmö", "SEK", "info@old-harbour.example", "Inactive"),
]

# VAT codes (VatInformationDto): (vatId, description, rate %, include in VAT exempt total). Norway's standard SAF-T
# codes for output VAT (Skatteetaten, "Standard Tax Codes"): 3 high rate, 31 medium, 33 low, 5 zero-rated.
VAT_CODES = [
    ("3", "Output VAT, high rate", "25", False),
    ("31", "Output VAT, medium rate", "15", False),
    ("33", "Output VAT, low rate", "12", False),
    ("5", "Zero-rated sales", "0", True),
]
VAT_RATES_FROM = "2016-01-01T00:00:00"

# (number, name, country, city, currency)
SUPPLIERS = [
    ("20001", "Stockholm Office Supplies AB", "SE", "Stockholm", "SEK"),
    ("20002", "Oslo Cloud Hosting AS", "NO", "Oslo", "NOK"),
    ("20003", "PayPal (Europe) S.à r.l. et Cie, S.C.A.", "LU", "Luxembourg", "EUR"),
    ("20004", "Stripe Payments Europe Ltd", "IE", "Dublin", "EUR"),
]


def _wrap(value):
    return {"value": value}


def _stable_uuid(company_id: str, name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"visma-sandbox:{company_id}:{name}"))


def _account_body(index: int, account_cd: str, description: str, kind: str, active: bool, cash: bool) -> dict:
    return {
        "accountID": index,
        "accountCD": account_cd,
        "accountGroupCD": None,
        "accountClass": ACCOUNT_CLASSES[kind],
        "type": kind,
        "active": active,
        "description": description,
        "useDefaultSub": False,
        "postOption": "Summary",
        "currency": None,
        "taxCategory": None,
        "cashAccount": cash,
        "publicCode1": None,
        "controlAccountModule": CONTROL_ACCOUNTS.get(account_cd),
        # A control account takes no manual GL entries (AccountDto.allowManualEntry).
        "allowManualEntry": account_cd not in CONTROL_ACCOUNTS,
        "errorInfo": None,
    }


def _vat_body(vat_id: str, description: str, rate: str, exempt: bool) -> dict:
    return {
        "vatId": vat_id,
        "description": description,
        "type": "Sales",
        "deductibleVat": False,
        "reverseVat": False,
        "statisticalVat": False,
        "pendingVat": False,
        "includeinVatExemptTotal": exempt,
        "includeinVatTotal": not exempt,
        "enterFromVatInvoice": False,
        "calculateOn": "Calculate on document amount",
        "cashDiscount": "Reduces VAT amount",
        "notValidAfter": None,
        "euReportCode": None,
        "documentText": description,
        "vismaXmlVatType": None,
        "schedules": [{"startDate": VAT_RATES_FROM, "vatRate": float(rate), "minTaxableAmt": 0.0,
                       "maxTaxableAmt": 0.0, "reportingGroup": None, "deductibleVatRate": 0.0, "groupType": None}],
        "categories": [],
        "zones": [],
    }


def _dimension_body(company_id: str) -> dict:
    modified = visma_datetime_format(ACCOUNTS_MODIFIED)
    segments = []
    for segment_id, description, length, values in SUBACCOUNT_SEGMENTS:
        segments.append(
            {
                "internalId": _stable_uuid(company_id, f"segment:{segment_id}"),
                "segmentId": segment_id,
                "description": description,
                "length": length,
                "publicId": _stable_uuid(company_id, f"segment-public:{segment_id}"),
                "timeStamp": visma_etag_new(),
                "lastModified": modified,
                "validate": True,
                "isAutoNumber": False,
                "consolNumChar": 0,
                "consolOrder": 0,
                "segmentValues": [
                    {
                        "internalId": _stable_uuid(company_id, f"value:{segment_id}:{value}"),
                        "segmentId": segment_id,
                        "valueId": value,
                        "description": value_description,
                        "publicId": _stable_uuid(company_id, f"value-public:{segment_id}:{value}"),
                        "active": active,
                        "timeStamp": visma_etag_new(),
                        "lastModified": modified,
                        "mappedSegValue": None,
                    }
                    for value, value_description, active in values
                ],
            }
        )
    return {
        "id": "SUBACCOUNT",
        "length": sum(length for _, _, length, _ in SUBACCOUNT_SEGMENTS),
        "description": "Subaccount",
        "segments": segments,
    }


def _subaccount_bodies() -> list[dict]:
    (_, department_label, _, departments), (_, project_label, _, projects) = SUBACCOUNT_SEGMENTS
    bodies = []
    for department, department_description, department_active in departments:
        for project, project_description, project_active in projects:
            bodies.append(
                {
                    "subaccountNumber": f"{department}-{project}",
                    "subaccountId": len(bodies) + 1,
                    "description": f"{department_description} / {project_description}",
                    "active": department_active and project_active,
                    "segments": [
                        {"segmentId": 1, "segmentDescription": department_label, "segmentValue": department,
                         "segmentValueDescription": department_description},
                        {"segmentId": 2, "segmentDescription": project_label, "segmentValue": project,
                         "segmentValueDescription": project_description},
                    ],
                    "errorInfo": None,
                }
            )
    return bodies


def _customer_rows(count: int) -> list[tuple]:
    rows = list(NAMED_CUSTOMERS[:count])
    for number in range(10001 + len(rows), 10001 + count):
        rows.append(
            (str(number), f"Sandbox Customer {number}", "SE", "Göteborg", "SEK", f"customer{number}@example.com",
             "Active")
        )
    return rows


def _party_dto(name: str, country: str, city: str, currency: str, email: str | None, status: str) -> dict:
    return {
        "name": _wrap(name),
        "status": _wrap(status),
        "currencyId": _wrap(currency),
        "mainAddress": _wrap({"addressLine1": _wrap("Storgatan 1"), "city": _wrap(city), "countryId": _wrap(country)}),
        "mainContact": _wrap({"name": _wrap(name), "email": _wrap(email)}),
    }


def _bulk_missing(company_id: str, collection: str, rows: list[tuple[str, dict, datetime]]) -> int:
    """Insert the seed documents not there yet; an existing one is left as it is (seeding is idempotent)."""
    existing = set(
        VismaDocument.objects.filter(company_id=company_id, collection=collection).values_list("key", flat=True)
    )
    missing = [
        VismaDocument(
            company_id=company_id,
            collection=collection,
            key=key,
            body=body,
            etag=visma_etag_new(),
            last_modified=moment,
            created=moment,
        )
        for key, body, moment in rows
        if key not in existing
    ]
    VismaDocument.objects.bulk_create(missing)
    return len(missing)


def _line(account: str, amount: float, *, segments: list[tuple[int, str]] = (), description: str = "") -> dict:
    return {
        "operation": "Insert",
        "accountNumber": _wrap(account),
        "description": _wrap(description),
        "quantity": _wrap(1),
        "unitPriceInCurrency": _wrap(amount),
        "subaccount": [{"segmentId": segment_id, "segmentValue": value} for segment_id, value in segments],
    }


def _seed_documents(company_id: str) -> None:
    invoices = [
        ("100001", "10001", "WEB-1001", "SEK", datetime(2026, 2, 10, 10, 0, tzinfo=UTC), False,
         [_line("3000", 500.0, segments=[(1, "100"), (2, "P-100")], description="Hiking boots"),
          _line("3000", 250.0, segments=[(1, "100"), (2, "P-100")], description="Rain jacket")]),
        ("100002", "10004", "WEB-1002", "EUR", datetime(2026, 2, 12, 10, 0, tzinfo=UTC), False,
         [_line("3010", 120.0, segments=[(1, "100"), (2, "P-200")], description="Tent")]),
        ("100003", "10001", None, "SEK", datetime(2026, 2, 15, 10, 0, tzinfo=UTC), False,
         [_line("3000", 399.0, segments=[(1, "100")], description="Head lamp")]),
        ("100004", "10002", "WEB-1004", "NOK", datetime(2026, 2, 20, 10, 0, tzinfo=UTC), True,
         [_line("3010", 800.0, segments=[(1, "200")], description="Repair service")]),
    ]
    for reference, customer, external_reference, currency, moment, hold, lines in invoices:
        if visma_document_find(company_id, "customer_invoice", reference):
            continue
        if reference == "100001":
            lines[0]["quantity"] = _wrap(2)
        document = customer_invoice_create(
            company_id,
            {
                "overrideNumberSeries": _wrap(True),
                "referenceNumber": _wrap(reference),
                "customerNumber": _wrap(customer),
                "externalReference": _wrap(external_reference),
                "currencyId": _wrap(currency),
                "documentDate": _wrap(moment.strftime("%Y-%m-%dT00:00:00")),
                "hold": _wrap(hold),
                "invoiceLines": lines,
            },
            at=moment,
        )
        if not hold:
            # Seeded invoices are released, so payments can be applied to them.
            document.body["status"] = "Open"
            document.save(update_fields=["body"])
    supplier_invoices = [
        ("300001", "20001", "SOS-2026-118", "SEK", datetime(2026, 2, 11, 9, 0, tzinfo=UTC), "6110", 1875.0),
        ("300002", "20002", "OCH-55012", "NOK", datetime(2026, 2, 18, 9, 0, tzinfo=UTC), "6540", 2400.0),
    ]
    for reference, supplier, supplier_reference, currency, moment, account, amount in supplier_invoices:
        if visma_document_find(company_id, "supplier_invoice", f"Invoice/{reference}"):
            continue
        supplier_invoice_create(
            company_id,
            {
                "overrideNumberSeries": _wrap(True),
                "referenceNumber": _wrap(reference),
                "supplierNumber": _wrap(supplier),
                "supplierReference": _wrap(supplier_reference),
                "currencyId": _wrap(currency),
                "date": _wrap(moment.strftime("%Y-%m-%dT00:00:00")),
                "invoiceLines": [
                    {"operation": "Insert", "accountNumber": _wrap(account), "costInCurrency": _wrap(amount),
                     "transactionDescription": _wrap(supplier_reference)}
                ],
            },
            at=moment,
        )
    if not visma_document_find(company_id, "journal", "000001"):
        journal_create(
            company_id,
            {
                "overrideNumberSeries": _wrap(True),
                "batchNumber": _wrap("000001"),
                "transactionDate": _wrap("2026-01-02T00:00:00"),
                "description": _wrap("Opening balance"),
                "journalTransactionLines": [
                    {"operation": "Insert", "accountNumber": _wrap("1920"), "debitAmountInCurrency": _wrap(50000.0),
                     "transactionDescription": _wrap("Opening balance")},
                    {"operation": "Insert", "accountNumber": _wrap("2081"), "creditAmountInCurrency": _wrap(50000.0),
                     "transactionDescription": _wrap("Opening balance")},
                ],
            },
            at=OPENING_BALANCE_POSTED,
        )


def visma_sandbox_seed(
    *,
    company_id: str = VISMA_SANDBOX_COMPANY_ID,
    client_id: str = VISMA_SANDBOX_CLIENT_ID,
    client_secret: str = VISMA_SANDBOX_CLIENT_SECRET,
    tenant_id: str = VISMA_SANDBOX_TENANT_ID,
    customer_count: int = VISMA_SANDBOX_CUSTOMER_COUNT,
) -> VismaClient:
    """Create the seed company and its client; what exists already is kept, so running it twice changes nothing."""
    with transaction.atomic():
        client, _ = VismaClient.objects.update_or_create(
            client_id=client_id,
            defaults={"client_secret": client_secret, "tenant_id": tenant_id, "company_id": company_id},
        )
        _bulk_missing(
            company_id,
            "account",
            [
                (account_cd, _account_body(index, account_cd, *rest), ACCOUNTS_MODIFIED + timedelta(minutes=index))
                for index, (account_cd, *rest) in enumerate(ACCOUNTS, start=1)
            ],
        )
        _bulk_missing(company_id, "dimension", [("SUBACCOUNT", _dimension_body(company_id), ACCOUNTS_MODIFIED)])
        # A calendar-year company; the control switch financial-periods reshapes it (July years, 13 periods).
        _bulk_missing(company_id, FINANCIAL_PERIODS,
                      [(key, body, ACCOUNTS_MODIFIED) for key, body in financial_periods_seed_rows()])
        _bulk_missing(company_id, "vat", [(row[0], _vat_body(*row), ACCOUNTS_MODIFIED) for row in VAT_CODES])
        _bulk_missing(
            company_id,
            "subaccount",
            [(body["subaccountNumber"], body, ACCOUNTS_MODIFIED) for body in _subaccount_bodies()],
        )
        customers = []
        for index, (number, name, country, city, currency, email, status) in enumerate(_customer_rows(customer_count)):
            moment = CUSTOMERS_FIRST_MODIFIED + index * CUSTOMERS_MODIFIED_STEP
            dto = _party_dto(name, country, city, currency, email, status)
            dto["corporateId"] = _wrap(f"55{number}-0001")
            customers.append((number, customer_body(dto, number=number, internal_id=index + 1, created=moment), moment))
        _bulk_missing(company_id, "customer", customers)
        suppliers = []
        for index, (number, name, country, city, currency) in enumerate(SUPPLIERS):
            moment = SUPPLIERS_FIRST_MODIFIED + timedelta(days=index)
            dto = _party_dto(name, country, city, currency, None, "Active")
            body = supplier_body(dto, number=number, internal_id=1001 + index, created=moment)
            suppliers.append((number, body, moment))
        _bulk_missing(company_id, "supplier", suppliers)
        visma_number_at_least(company_id, "customer", 10000 + customer_count)
        visma_number_at_least(company_id, "supplier", 20000 + len(SUPPLIERS))
        visma_number_at_least(company_id, "internal_id", 2000)
        _seed_documents(company_id)
    return client
