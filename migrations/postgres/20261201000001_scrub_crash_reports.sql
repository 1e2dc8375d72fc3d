-- Twin of ../20261201000001_scrub_crash_reports.sql: every stored crash
-- report loses its source_line (a path the program under test could forge
-- named the file it was read from); the rest of each report stays. Rows
-- whose report is not a JSON object with a targets array are left alone, as
-- SQLite's json_valid guard leaves them.

CREATE FUNCTION pg_temp.ww_scrubbable(report TEXT) RETURNS BOOLEAN LANGUAGE plpgsql AS $$
BEGIN
    RETURN jsonb_typeof(report::jsonb -> 'targets') = 'array';
EXCEPTION WHEN others THEN
    RETURN FALSE;
END
$$;

UPDATE builds
SET report = jsonb_set(
    report::jsonb,
    '{targets}',
    COALESCE((
        SELECT jsonb_agg(
            CASE
                WHEN jsonb_typeof(target.value -> 'tests') = 'array' THEN jsonb_set(
                    target.value,
                    '{tests}',
                    COALESCE((
                        SELECT jsonb_agg(run.value #- '{crash,source_line}' ORDER BY run.ordinality)
                        FROM jsonb_array_elements(target.value -> 'tests') WITH ORDINALITY AS run (value, ordinality)
                    ), '[]'::jsonb)
                )
                ELSE target.value
            END
            ORDER BY target.ordinality
        )
        FROM jsonb_array_elements(report::jsonb -> 'targets') WITH ORDINALITY AS target (value, ordinality)
    ), '[]'::jsonb)
)::text
WHERE report IS NOT NULL
  AND report LIKE '%"source_line"%'
  AND pg_temp.ww_scrubbable(report);
DROP FUNCTION pg_temp.ww_scrubbable(TEXT);
