-- The relay's 16 KiB payload limit measures the payload, not its stored form: 108 used
-- pg_column_size, which for a stored jsonb is its compressed size, so a payload of
-- megabytes of one repeated character (a 200 KB one is stored in 2 KB) passed the limit.
-- The size of its text is what the ticket service wrote. Depth is checked first, so a
-- payload both too deep and too large (deep nesting is large as text) says it is too deep.
CREATE OR REPLACE FUNCTION chainworker_payload_problem(p_payload jsonb) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN p_payload IS NULL OR jsonb_typeof(p_payload) <> 'object'
            THEN 'payload must be a JSON object'
        WHEN jsonb_path_exists(p_payload, 'strict $.**{17 to last}')
            THEN 'payload is nested deeper than 16 levels'
        WHEN octet_length(p_payload::text) > 16384 THEN 'payload is larger than 16 KiB'
    END
$$;
