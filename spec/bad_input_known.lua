--- bad_input_known.lua: the known failures of spec/bad_input_spec.lua, as
-- rules.  A rule matches cases by `name` (the signature's name, exact),
-- `prefix` (of that name) and `label` (a substring of the call as written);
-- first match wins.  Its `reason` is the diagnosis; `skip` marks cases that
-- hang or crash (not run unless TA_RUN_PENDING=1).  A case a rule matches
-- that behaves is not pending: fixing a bug needs no edit here.
return {
  -- (none today: every case of spec/bad_input_cases.lua behaves)
}
