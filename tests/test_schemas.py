"""The schemas agree with each other: contract, cleaned shape, silver, tables and partitions."""

from pyspark.sql import types as T

from multiverse_etl.entities import ENTITIES
from multiverse_etl.transform.schemas import (
    BRONZE_SCHEMA,
    CLEAN_SCHEMAS,
    LANDING_PAGE_SCHEMA,
    SILVER_SCHEMAS,
    record_string_schema,
)
from multiverse_etl.transform.tables import TABLES


def test_records_are_parsed_as_text_so_no_value_is_coerced():
    for spec in ENTITIES:
        schema = record_string_schema(spec)
        assert [f.name for f in schema.fields] == [f.name for f in spec.contract]
        assert {type(f.dataType) for f in schema.fields} == {T.StringType}


def test_landing_records_are_read_as_raw_text():
    data = LANDING_PAGE_SCHEMA["data"].dataType
    assert isinstance(data, T.ArrayType) and isinstance(data.elementType, T.StringType)
    assert BRONZE_SCHEMA["raw_record"].dataType == T.StringType()


def test_silver_keys_and_business_columns_are_required_and_cleaned():
    for spec in ENTITIES:
        entity = spec.name
        silver = SILVER_SCHEMAS[entity]
        for column in spec.business_columns:
            assert column in CLEAN_SCHEMAS[entity].fieldNames(), (entity, column)
            assert not silver[column].nullable, (entity, column)
            assert silver[column].dataType == CLEAN_SCHEMAS[entity][column].dataType, (entity, column)
        assert set(spec.key) <= set(spec.business_columns)
        assert set(spec.text_columns) <= set(spec.business_columns)
        assert {spec.typed_column(f.name) for f in spec.contract if f.json_type == "integer"} <= set(spec.key) | set(
            spec.business_columns
        )  # every integer field is checked against a typed column
        assert silver[spec.silver_partition.name].dataType == T.DateType()
        assert {"is_deleted", "deleted_at", "run_id", "extracted_at", "record_hash"} <= set(silver.fieldNames())


def test_every_table_is_partitioned_by_a_date_column_it_has():
    assert set(TABLES) == {
        "bronze/apprenticeships",
        "bronze/projects",
        "bronze/programmes",
        "silver/apprenticeships",
        "silver/projects",
        "silver/programmes",
        "silver/quarantine",
        "gold/apprenticeships",
        "gold/apprenticeship_projects",
        "_audit/runs",
    }
    for table, (schema, partition) in TABLES.items():
        assert schema[partition].dataType == T.DateType(), table


def test_nested_fields_are_nullable_because_delta_only_enforces_top_level_not_null():
    def nested_required(dtype: T.DataType) -> bool:
        if isinstance(dtype, T.StructType):
            return any(not f.nullable or nested_required(f.dataType) for f in dtype.fields)
        if isinstance(dtype, T.ArrayType):
            return not dtype.containsNull or nested_required(dtype.elementType)
        if isinstance(dtype, T.MapType):
            return not dtype.valueContainsNull or nested_required(dtype.valueType)
        return False

    for table, (schema, _) in TABLES.items():
        for field in schema.fields:
            assert not nested_required(field.dataType), (table, field.name)
