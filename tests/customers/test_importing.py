"""The pure reading/validation layer: no database."""

from __future__ import annotations

import ast
import datetime as dt
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from rfm_portal.customers import importing as im

FILES = Path(__file__).parent / "files"
PROJECT_HEADER = "invoice,customer_id,sku,description,category,invoiced_at,quantity,unit_price,country"


def write(tmp_path: Path, text: str, name: str = "data.csv", encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode(encoding))
    return path


def validate_text(tmp_path: Path, text: str, **kwargs) -> im.ValidationResult:
    return im.validate_transactions(im.read_table(write(tmp_path, text)), **kwargs)


def test_module_has_no_django_imports():
    tree = ast.parse(Path(im.__file__).read_text())
    modules = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    modules += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in modules if m and m.startswith(("django", "rest_framework", "rfm_portal"))]


# --- Reading ---------------------------------------------------------------------------


def test_online_retail_sample_is_read_with_bom_stripped_and_line_numbers():
    frame = im.read_table(FILES / "online_retail_sample.csv")
    assert list(frame.columns[:2]) == ["InvoiceNo", "StockCode"]  # no "\ufeffInvoiceNo"
    assert frame["line"].tolist() == list(range(2, 11))
    assert frame.loc[3, "Description"] == "HAND WARMER UNION JACK, RED"  # quoted comma kept


def test_latin1_file_falls_back_and_keeps_accents(tmp_path):
    text = f"{PROJECT_HEADER}\n1,7,S,Crème brûlée dish,,2024-01-02 10:00,1,2.5,España\n"
    frame = im.read_table(write(tmp_path, text, encoding="latin-1"))
    assert frame.loc[0, "description"] == "Crème brûlée dish"
    assert frame.loc[0, "country"] == "España"


@pytest.mark.parametrize("delimiter", [";", "\t", "|"])
def test_delimiter_is_sniffed_from_the_header(tmp_path, delimiter):
    text = (
        PROJECT_HEADER.replace(",", delimiter)
        + "\n"
        + delimiter.join(["1", "7", "S", "a,b", "", "2024-01-02", "1", "2.5", "UK"])
    )
    frame = im.read_table(write(tmp_path, text + "\n"))
    assert frame.loc[0, "description"] == "a,b"
    assert frame.loc[0, "unit_price"] == "2.5"


def test_blank_lines_are_skipped_but_keep_their_line_numbers(tmp_path):
    text = f"{PROJECT_HEADER}\n1,7,S,,,2024-01-02,1,2,UK\n\n\n1,8,S,,,2024-01-02,1,2,UK\n"
    frame = im.read_table(write(tmp_path, text))
    assert frame["line"].tolist() == [2, 5]


def test_empty_file_is_an_error(tmp_path):
    with pytest.raises(im.ImportFileError, match="empty"):
        im.read_table(write(tmp_path, ""))


def test_ragged_csv_is_reported_with_its_line(tmp_path):
    text = f"{PROJECT_HEADER}\n1,7,S,,,2024-01-02,1,2,UK\n1,7,S,,,2024-01-02,1,2,UK,extra,more\n"
    with pytest.raises(im.ImportFileError, match="line 3"):
        im.read_table(write(tmp_path, text))


def test_xlsx_is_read_with_row_numbers_and_typed_cells(tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"])
    ws.append(["489434", "85048", "ROSE CUSHION", 12, dt.datetime(2009, 12, 1, 7, 45), 6.95, 13085.0, "United Kingdom"])
    ws.append([None] * 8)
    ws.append(["C489449", "22087", "PAPER BUNTING", -12, dt.datetime(2009, 12, 1, 10, 33), 2.95, 16321, "Australia"])
    path = tmp_path / "retail_ii.xlsx"
    wb.save(path)
    frame = im.read_table(path)
    assert frame["line"].tolist() == [2, 4]
    result = im.validate_transactions(frame)
    assert result.errors == []
    valid = result.valid
    assert valid["customer_id"].tolist() == ["13085", "16321"]
    assert valid["invoiced_at"].tolist() == [
        pd.Timestamp("2009-12-01 07:45", tz="UTC"),
        pd.Timestamp("2009-12-01 10:33", tz="UTC"),
    ]
    assert valid["unit_price_e4"].tolist() == [69500, 29500]
    assert valid["is_return"].tolist() == [False, True]


# --- Columns ---------------------------------------------------------------------------

RETAIL_I = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]
RETAIL_II = ["Invoice", "StockCode", "Description", "Quantity", "InvoiceDate", "Price", "Customer ID", "Country"]


@pytest.mark.parametrize(
    ("columns", "customer_column", "price_column"),
    [
        (RETAIL_I, "CustomerID", "UnitPrice"),
        (RETAIL_II, "Customer ID", "Price"),
        (PROJECT_HEADER.split(","), "customer_id", "unit_price"),
    ],
)
def test_known_layouts_are_recognised(columns, customer_column, price_column):
    resolved = im.resolve_columns(columns, im.TRANSACTION_REQUIRED, im.TRANSACTION_OPTIONAL, im.TRANSACTION_ALIASES)
    assert resolved["customer_id"] == customer_column
    assert resolved["unit_price"] == price_column
    expected = {"invoice", "customer_id", "invoiced_at", "quantity", "unit_price", "sku", "description", "country"}
    if "category" in columns:
        expected.add("category")
    assert set(resolved) == expected
    assert set(resolved.values()) <= set(columns)


def test_column_matching_ignores_case_spaces_and_underscores():
    columns = ["INVOICE_NO", "customer id", "Invoice Date", "QTY", "unit price"]
    resolved = im.resolve_columns(columns, im.TRANSACTION_REQUIRED, im.TRANSACTION_OPTIONAL, im.TRANSACTION_ALIASES)
    assert resolved == {
        "invoice": "INVOICE_NO",
        "customer_id": "customer id",
        "invoiced_at": "Invoice Date",
        "quantity": "QTY",
        "unit_price": "unit price",
    }


def test_missing_required_column_names_it_and_the_columns_found():
    with pytest.raises(im.ImportFileError) as info:
        im.resolve_columns(
            ["InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice"],
            im.TRANSACTION_REQUIRED,
            im.TRANSACTION_OPTIONAL,
            im.TRANSACTION_ALIASES,
        )
    message = str(info.value)
    assert "Missing required column customer_id" in message
    assert "'InvoiceNo', 'Quantity', 'InvoiceDate', 'UnitPrice'" in message


def test_explicit_mapping_wins_and_unknown_targets_or_columns_are_errors():
    columns = ["Bon", "Client", "Datum", "Menge", "Preis", "Price"]
    mapping = {
        "invoice": "Bon",
        "customer_id": "client",
        "invoiced_at": "Datum",
        "quantity": "Menge",
        "unit_price": "Preis",
    }
    resolved = im.resolve_columns(
        columns, im.TRANSACTION_REQUIRED, im.TRANSACTION_OPTIONAL, im.TRANSACTION_ALIASES, mapping
    )
    assert resolved["unit_price"] == "Preis"  # not the auto-detected "Price"
    assert resolved["customer_id"] == "Client"
    with pytest.raises(im.ImportFileError, match="Unknown target field 'shop'"):
        im.resolve_columns(columns, im.TRANSACTION_REQUIRED, (), im.TRANSACTION_ALIASES, {"shop": "Bon"})
    with pytest.raises(im.ImportFileError, match=r"Mapped column 'Kunde' .* not in the file"):
        im.resolve_columns(columns, im.TRANSACTION_REQUIRED, (), im.TRANSACTION_ALIASES, {"customer_id": "Kunde"})


def test_two_columns_for_one_target_must_be_mapped():
    with pytest.raises(im.ImportFileError, match="both look like unit_price"):
        im.resolve_columns(
            ["Invoice", "CustomerID", "InvoiceDate", "Quantity", "UnitPrice", "Price"],
            im.TRANSACTION_REQUIRED,
            im.TRANSACTION_OPTIONAL,
            im.TRANSACTION_ALIASES,
        )


@pytest.mark.parametrize(
    "given",
    [
        {"customer_id": "Client No", "invoice": "Bon"},
        '{"customer_id": "Client No", "invoice": "Bon"}',
        "customer_id=Client No\ninvoice = Bon",
        "customer_id=Client No, invoice=Bon",
        ["customer_id=Client No", "invoice=Bon"],
    ],
)
def test_parse_mapping_accepts_dicts_json_and_pairs(given):
    assert im.parse_mapping(given) == {"customer_id": "Client No", "invoice": "Bon"}


@pytest.mark.parametrize("given", ["customer_id", "[1, 2]", "{not json", "=Client"])
def test_parse_mapping_rejects_malformed_input(given):
    with pytest.raises(ValueError):
        im.parse_mapping(given)


# --- Row validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("1,,S,,,2024-01-02 10:00,1,2.5,UK", "no customer id"),
        (",7,S,,,2024-01-02 10:00,1,2.5,UK", "invoice is empty"),
        ("1,7,S,,,31/31/2024,1,2.5,UK", "invoiced_at '31/31/2024' is not a date"),
        ("1,7,S,,,,1,2.5,UK", "invoiced_at is empty"),
        ("1,7,S,,,2024-01-02 10:00,many,2.5,UK", "quantity 'many' is not a number"),
        ("1,7,S,,,2024-01-02 10:00,1.5,2.5,UK", "quantity '1.5' is not a whole number"),
        ("1,7,S,,,2024-01-02 10:00,,2.5,UK", "quantity is empty"),
        ("1,7,S,,,2024-01-02 10:00,1,£2,UK", "unit_price '£2' is not a number"),
        ("1,7,S,,,2024-01-02 10:00,1,-2,UK", "unit_price is negative"),
        ("1,7,S,,,2024-01-02 10:00,1,,UK", "unit_price is empty"),
        ("1,7,S,,,2024-01-02 10:00,1,nan,UK", "unit_price 'nan' is not a number"),
        ("12345678901234567890123456789012345,7,S,,,2024-01-02,1,2,UK", "invoice is longer than 32 characters"),
    ],
)
def test_each_bad_row_is_rejected_with_its_line_and_reason(tmp_path, row, reason):
    good = "1,7,S,,,2024-01-02 10:00,1,2.5,UK"
    result = validate_text(tmp_path, f"{PROJECT_HEADER}\n{good}\n{good.replace(',7,', ',8,')}\n{row}\n")
    assert len(result.errors) == 1
    line, message = result.errors[0]
    assert line == 4
    assert reason in message
    assert result.valid["line"].tolist() == [2, 3]


def test_all_reasons_of_a_row_are_reported_together(tmp_path):
    result = validate_text(tmp_path, f"{PROJECT_HEADER}\n1,,S,,,nope,x,y,UK\n")
    assert result.errors == [
        (
            2,
            "no customer id; invoiced_at 'nope' is not a date (expected ISO 2010-12-01 08:26 or 12/1/2010 8:26 "
            "(month first)); quantity 'x' is not a number; unit_price 'y' is not a number",
        )
    ]


def test_online_retail_quirks():
    result = im.validate_transactions(im.read_table(FILES / "online_retail_sample.csv"))
    assert result.errors == [(6, "no customer id")]
    valid = result.valid.set_index("line")
    assert valid.loc[2, "customer_id"] == "17850"  # "17850.0" from a spreadsheet export
    assert valid.loc[2, "invoiced_at"] == pd.Timestamp("2010-12-01 08:26", tz="UTC")  # month first
    assert valid.loc[10, "invoiced_at"] == pd.Timestamp("2010-12-13 08:45", tz="UTC")
    # C-invoice with a negative quantity: a return as given.
    assert (valid.loc[7, "quantity"], valid.loc[7, "amount_e4"], valid.loc[7, "is_return"]) == (-1, -275000, True)
    # C-invoice with a positive quantity: stored negative.
    assert (valid.loc[8, "quantity"], valid.loc[8, "amount_e4"], valid.loc[8, "is_return"]) == (-1, -46500, True)
    # Negative quantity without a C: a return too.
    assert (valid.loc[9, "quantity"], valid.loc[9, "amount_e4"], valid.loc[9, "is_return"]) == (-3, -37500, True)
    assert (valid.loc[2, "quantity"], valid.loc[2, "amount_e4"], valid.loc[2, "is_return"]) == (6, 153000, False)
    # Identical lines 3 and 4 are two transactions with distinct hashes.
    assert valid.loc[3, "row_hash"] != valid.loc[4, "row_hash"]
    assert valid["row_hash"].is_unique
    assert valid["row_hash"].str.fullmatch(r"[0-9a-f]{40}").all()


def test_row_hash_is_the_same_for_the_same_sale_in_another_layout(tmp_path):
    retail_i = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
    retail_i += "536365,85123A,HEART,6,12/1/2010 8:26,2.55,17850.0,United Kingdom\n"
    project = f"{PROJECT_HEADER}\n536365,17850,85123A,Heart holder,home,2010-12-01T08:26:00Z,6,2.5500,UK\n"
    a = im.validate_transactions(im.read_table(write(tmp_path, retail_i, "a.csv")))
    b = im.validate_transactions(im.read_table(write(tmp_path, project, "b.csv")))
    assert a.valid["row_hash"].tolist() == b.valid["row_hash"].tolist()


def test_timestamps_iso_offsets_become_utc_and_dayfirst_switches_order(tmp_path):
    text = (
        f"{PROJECT_HEADER}\n"
        "1,7,S,,,2024-03-04T10:00:00+02:00,1,1,UK\n"
        "2,7,S,,,3/4/2024 10:00,1,1,UK\n"
        "3,7,S,,,2024-03-04,1,1,UK\n"
    )
    month_first = validate_text(tmp_path, text).valid["invoiced_at"].tolist()
    assert month_first == [
        pd.Timestamp("2024-03-04 08:00", tz="UTC"),
        pd.Timestamp("2024-03-04 10:00", tz="UTC"),
        pd.Timestamp("2024-03-04 00:00", tz="UTC"),
    ]
    day_first = validate_text(tmp_path, text, dayfirst=True).valid["invoiced_at"].tolist()
    assert day_first[1] == pd.Timestamp("2024-04-03 10:00", tz="UTC")
    dotted = validate_text(tmp_path, f"{PROJECT_HEADER}\n1,7,S,,,13.12.2024 9:05,1,1,UK\n", dayfirst=True)
    assert dotted.valid["invoiced_at"].tolist() == [pd.Timestamp("2024-12-13 09:05", tz="UTC")]
    # Month-first files never silently accept a day-first date.
    assert validate_text(tmp_path, f"{PROJECT_HEADER}\n1,7,S,,,13/12/2024 9:05,1,1,UK\n").errors[0][0] == 2


def test_summaries_pick_earliest_first_seen_and_last_non_empty_text(tmp_path):
    text = (
        f"{PROJECT_HEADER}\n"
        "1,7,S,Old name,toys,2024-03-04,1,1,UK\n"
        "2,7,S,New name,,2024-01-01,1,1,France\n"
        "3,7,T,,,2024-05-01,1,1,\n"
        "4,8,,,,2024-02-01,1,1,\n"
    )
    valid = validate_text(tmp_path, text).valid
    customers = im.customer_summary(valid).set_index("external_id")
    assert customers.loc["7", "first_seen"] == pd.Timestamp("2024-01-01", tz="UTC")
    assert customers.loc["7", "country"] == "France"
    assert customers.loc["8", "country"] == ""
    products = im.product_summary(valid).set_index("sku")
    assert list(products.index) == ["S", "T"]  # no product for an empty sku
    assert products.loc["S"].tolist() == ["New name", "toys"]


# --- Campaigns ---------------------------------------------------------------------------

CAMPAIGN_HEADER = "customer_id,campaign,treated,converted,revenue,sent_at"


def test_campaign_rows_are_validated(tmp_path):
    text = (
        f"{CAMPAIGN_HEADER}\n"
        "7,spring,1,0,0,2024-03-01\n"
        "8.0,spring,TRUE,yes,12.5,3/1/2024 9:00\n"
        "9,spring,maybe,0,0,2024-03-01\n"
        "7,spring,0,0,0,2024-03-01\n"
        ",spring,0,0,0,2024-03-01\n"
        "10,spring,0,1,,when\n"
    )
    result = im.validate_campaigns(im.read_table(write(tmp_path, text)))
    assert result.errors == [
        (4, "treated 'maybe' is not 0/1/true/false"),
        (5, "customer already has a record for this campaign on line 2"),
        (6, "no customer id"),
        (7, "sent_at 'when' is not a date (expected ISO 2010-12-01 08:26 or 12/1/2010 8:26 (month first))"),
    ]
    valid = result.valid
    assert valid["customer_id"].tolist() == ["7", "8"]
    assert valid["treated"].tolist() == [True, True]
    assert valid["converted"].tolist() == [False, True]
    assert valid["revenue_e4"].tolist() == [0, 125000]


def test_campaign_file_without_required_column_is_rejected():
    frame = pd.DataFrame({"customer_id": ["1"], "campaign": ["x"], "line": [2]})
    with pytest.raises(im.ImportFileError, match="treated, converted, sent_at"):
        im.validate_campaigns(frame)


@pytest.mark.parametrize("chunk_rows", [None, 2])
@pytest.mark.parametrize("at", [0, 1, 2, 3])
def test_a_surplus_field_is_found_on_any_row_of_any_chunk(tmp_path, chunk_rows, at):
    # pandas' C parser does not check the first row of each chunk (nor of the file) for surplus fields.
    rows = [f"{i},7,S,,,2024-01-02,1,2,UK" for i in range(6)]
    rows[at] += ",surplus"
    path = write(tmp_path, "\n".join([PROJECT_HEADER, *rows]) + "\n")
    with pytest.raises(im.ImportFileError, match=f"line {at + 2} has more fields than the header \\(9\\)"):
        list(im.iter_table(path, chunk_rows=chunk_rows))
