"""The declarative base every domain package's models derive from, so one metadata holds the schema."""

from typing import Final

from sqlalchemy import MetaData, Table
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# A column's ``info`` for free text that no query filters, joins or sorts on (a name, an address): PostgreSQL
# gathers no planner statistics for it (``SET STATISTICS 0``, by migration; staged copies likewise). ANALYZE
# sorts a sample of each column under the database's collation, and under ja_JP.UTF-8 a city's addresses
# took 8 s of the 9.4 s ANALYZE after every import, and as long again each time autovacuum came by.
NOT_SAMPLED: Final = {"statistics": 0}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def unsampled(table: Table) -> list[str]:
    """The columns of ``table`` declared :data:`NOT_SAMPLED`."""
    return [column.name for column in table.columns if column.info.get("statistics") == NOT_SAMPLED["statistics"]]
