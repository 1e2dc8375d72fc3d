-- Crash reports quoted a "source line" that the daemon read from a path
-- named in output the program under test could forge (issue 10, finding 1):
-- a stored report may hold any file the daemon could read, its environment
-- included. Every stored crash report loses its source_line; the rest of
-- each report stays. (Subquery results lose their JSON subtype, hence json().)

UPDATE builds
SET report = json_set(
    report,
    '$.targets',
    json((
        SELECT json_group_array(
            json(
                CASE
                    WHEN json_type(target.value, '$.tests') = 'array' THEN json_set(
                        target.value,
                        '$.tests',
                        json((
                            SELECT json_group_array(json(json_remove(run.value, '$.crash.source_line')) ORDER BY run.key)
                            FROM json_each(target.value, '$.tests') AS run
                        ))
                    )
                    ELSE target.value
                END
            )
            ORDER BY target.key
        )
        FROM json_each(builds.report, '$.targets') AS target
    ))
)
WHERE report IS NOT NULL
  AND json_valid(report)
  AND json_type(report, '$.targets') = 'array'
  AND report LIKE '%"source_line"%';
