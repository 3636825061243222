"""Every contract break is caught with every reason, and rejected rows keep their raw text and lineage."""

from chispa import assert_df_equality
from pyspark.sql import functions as F

from multiverse_etl.entities import entity as spec_of
from multiverse_etl.transform.clean import validate_records
from multiverse_etl.transform.quarantine import (
    NOT_AN_OBJECT,
    UNREADABLE_RECORD,
    is_valid,
    possible_reasons,
    quarantine_records,
)
from multiverse_etl.transform.schemas import QUARANTINE_SCHEMA
from support.landed import Raw, apprenticeship, bronze_frame, compact, lineage, programme, project, without


def reasons_of(spark, entity, records, parents=None):
    """(record_index, reasons) of each bronze record, in order."""
    validated = bronze_frame(spark, entity, records, parents).transform(validate_records(spec_of(entity)))
    return [
        (r.record_index, list(r.reasons))
        for r in validated.orderBy("record_index").select("record_index", "reasons").collect()
    ]


def test_every_apprenticeship_contract_break_is_a_reason(spark):
    records = [
        apprenticeship(1),
        without(apprenticeship(2), "id"),
        apprenticeship(None),
        Raw(
            '{"id":"4","name":"n","programme_id":7,"modified_date":"2024-03-05T10:21:33","first_name":"a","last_name":"b","email_address":"a@b.org"}'
        ),
        apprenticeship(5, programme_id="PRG-7"),
        apprenticeship(6, first_name=10012),
        apprenticeship(7, modified_date="31/12/2023 14:05"),
        apprenticeship(8, modified_date=20240305),
        without(apprenticeship(9), "email_address", "last_name"),
        apprenticeship(10, name=None, programme_id=1.5, modified_date="yesterday"),
        apprenticeship(11, id=True),
        apprenticeship(12, email_address="not an e-mail"),
        Raw('"just text"'),
        Raw("[1,2]"),
        None,
    ]
    assert reasons_of(spark, "apprenticeships", records) == [
        (0, []),
        (1, ["missing_field:id"]),
        (2, ["null_value:id"]),
        (3, ["wrong_type:id"]),
        (4, ["wrong_type:programme_id"]),
        (5, ["wrong_type:first_name"]),
        (6, ["unparseable_date:modified_date"]),
        (7, ["wrong_type:modified_date"]),
        (8, ["missing_field:last_name", "missing_field:email_address"]),
        (9, ["null_value:name", "wrong_type:programme_id", "unparseable_date:modified_date"]),
        (10, ["wrong_type:id"]),
        (11, []),  # an invalid e-mail is flagged (email_is_valid), not quarantined
        (12, [NOT_AN_OBJECT]),
        (13, [NOT_AN_OBJECT]),
        (14, [NOT_AN_OBJECT]),
    ]


def test_every_project_contract_break_is_a_reason(spark):
    records = [
        project(1),
        project(2, status="in_review"),
        project(3, status=" N/A "),
        project(4, title=12345),
        without(project(5), "description"),
        project(None),
        project("P-7"),
        project(8),
    ]
    parents = [10, 10, 10, 10, 10, 10, 10, None]
    assert reasons_of(spark, "projects", records, parents) == [
        (0, []),
        (1, ["unknown_status:status"]),
        (2, ["unknown_status:status"]),
        (3, ["wrong_type:title"]),
        (4, ["missing_field:description"]),
        (5, ["null_value:id"]),
        (6, ["wrong_type:id"]),
        (7, ["missing_parent:apprenticeship_id"]),
    ]


def test_every_programme_contract_break_is_a_reason(spark):
    records = [
        programme(1),
        programme(2, duration="12 months"),
        programme(3, duration=-6),
        programme("PRG-4"),
        without(programme(5), "name"),
        programme(6, duration=0),
    ]
    assert reasons_of(spark, "programmes", records) == [
        (0, []),
        (1, ["wrong_type:duration"]),
        (2, ["negative_value:duration"]),
        (3, ["wrong_type:id"]),
        (4, ["missing_field:name"]),
        (5, []),
    ]


def test_possible_reasons_name_every_reason_the_rules_can_give():
    assert set(possible_reasons(spec_of("projects"))) == {
        "missing_field:id",
        "null_value:id",
        "wrong_type:id",
        "missing_field:title",
        "null_value:title",
        "wrong_type:title",
        "lone_surrogate:title",
        "missing_field:description",
        "null_value:description",
        "wrong_type:description",
        "lone_surrogate:description",
        "missing_field:status",
        "null_value:status",
        "wrong_type:status",
        "lone_surrogate:status",
        "unknown_status:status",
        "missing_parent:apprenticeship_id",
        NOT_AN_OBJECT,
        UNREADABLE_RECORD,
    }
    assert "negative_value:duration" in possible_reasons(spec_of("programmes"))
    assert "unparseable_date:modified_date" in possible_reasons(spec_of("apprenticeships"))


def test_a_record_holding_a_number_beyond_the_readers_limit_is_unreadable_and_only_such_a_record(spark):
    """The JSON reader refuses a number of more than 100,000 digits (`JSON_READ_LIMITS`): `unreadable_record` alone,
    the id read off the text; 100,000 digits, or 100,001 digits inside a string, are read and validated as usual."""
    beyond, at_limit = "9" * 100_001, "9" * 100_000
    records = [
        Raw('{"id":1,"name":"n","duration":' + beyond + ',"description":"d"}'),
        Raw('{"id":2,"name":"n","duration":-0.' + beyond + ',"description":"d"}'),
        Raw('{"id":' + beyond + ',"name":"n","duration":1,"description":"d"}'),
        Raw('{"id":4,"name":"n","duration":' + at_limit + ',"description":"d"}'),
        programme(5, name=beyond),
        programme(6),
    ]
    validated = bronze_frame(spark, "programmes", records).transform(validate_records(spec_of("programmes")))
    got = [(list(r.reasons), r.record_id) for r in validated.orderBy("record_index").collect()]
    assert got == [
        ([UNREADABLE_RECORD], "1"),
        ([UNREADABLE_RECORD], "2"),
        ([UNREADABLE_RECORD], None),
        (["wrong_type:duration"], "4"),
        ([], "5"),
        ([], "6"),
    ]


def test_rejected_rows_go_to_quarantine_with_raw_text_lineage_and_reasons(spark):
    records = [project(1), project(2, status="archived"), Raw('{"id":"P-3","title":1,"description":"d","status":"x"}')]
    validated = bronze_frame(spark, "projects", records, parents=[10, 10, 11]).transform(
        validate_records(spec_of("projects"))
    )
    expected = spark.createDataFrame(
        [
            ("projects", *lineage(1, 10, "projects"), "2", compact(records[1]), ["unknown_status:status"], 1),
            (
                "projects",
                *lineage(2, 11, "projects"),
                "P-3",
                records[2].text,
                ["wrong_type:id", "wrong_type:title", "unknown_status:status"],
                2,
            ),
        ],
        QUARANTINE_SCHEMA,
    )
    assert_df_equality(validated.transform(quarantine_records(spec_of("projects"))), expected, ignore_row_order=True)
    assert [r.project_id for r in validated.filter(is_valid(F.col("reasons"))).collect()] == [1]
