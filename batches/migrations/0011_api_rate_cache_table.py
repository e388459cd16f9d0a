"""The API's per-token rate counts live in a database cache table when there is no Redis
(batches/http_api/throttle.py): create it with the schema, so a fresh install needs no extra step."""
from django.core.management import call_command
from django.db import migrations


def create_cache_table(apps, schema_editor):
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):
    dependencies = [("batches", "0010_integrations")]
    atomic = False  # createcachetable manages its own transaction

    operations = [migrations.RunPython(create_cache_table, migrations.RunPython.noop)]
