-- miltertest-lib.lua - helpers for the tests/e2e/miltertest cases (Debian's miltertest 1.5)
--
-- Each case script starts with  dofile(lib)  and ends with  run(main).  Globals from
-- miltertest -D: lib (this file), sock (shadowd's address), tag (prefix of the queue ids
-- and Message-IDs, e.g. "wait.basic"), offer (optional: the protocol bits to offer, as
-- a decimal number; unset = miltertest's defaults).
--
-- Every reply miltertest sees from shadowd must be SMFIR_CONTINUE or SMFIR_ACCEPT: a
-- passive milter never rejects, tempfails, discards or sets a reply code, and at end of
-- message it never asks for an edit or a quarantine (mt.eom_check for each MT_* kind).
-- A step that shadowd negotiated away (SMFIP_NO*) is skipped and reported.

REPLY_NAMES = {}
for _, n in ipairs({ "CONTINUE", "ACCEPT", "REJECT", "TEMPFAIL", "DISCARD", "REPLYCODE", "SKIP" }) do
  if _G["SMFIR_" .. n] ~= nil then REPLY_NAMES[_G["SMFIR_" .. n]] = n end
end

-- rname: the SMFIR_ name of a reply code
function rname(code)
  if code == nil then return "nil" end
  return REPLY_NAMES[code] or string.format("%q", string.char(code))
end

-- ok: miltertest's calls return nil on success or an error string
function ok(err, what)
  if err ~= nil then error(what .. ": " .. tostring(err), 2) end
end

function check(cond, what)
  if not cond then error(what, 2) end
end

SEEN = {}      -- "step=REPLY" for every reply, in order
SKIPPED = {}   -- steps shadowd negotiated away

-- passive: the last reply must be continue or accept
function passive(conn, what)
  local r = mt.getreply(conn)
  if r ~= SMFIR_CONTINUE and r ~= SMFIR_ACCEPT then
    error(what .. ": shadowd answered " .. rname(r) .. " (a passive milter may only continue or accept)", 2)
  end
  SEEN[#SEEN + 1] = what .. "=" .. rname(r)
end

-- step: send one command unless shadowd negotiated it away, then check its reply
function step(conn, noflag, what, fn, ...)
  if noflag ~= nil and mt.test_option(conn, noflag) then
    SKIPPED[#SKIPPED + 1] = what
    return
  end
  ok(fn(conn, ...), what)
  passive(conn, what)
end

EDIT_KINDS = {
  { "MT_HDRADD", MT_HDRADD }, { "MT_HDRINSERT", MT_HDRINSERT }, { "MT_HDRCHANGE", MT_HDRCHANGE },
  { "MT_HDRDELETE", MT_HDRDELETE }, { "MT_BODYCHANGE", MT_BODYCHANGE }, { "MT_QUARANTINE", MT_QUARANTINE },
}
-- miltertest 1.5 checks MT_RCPTADD and MT_RCPTDELETE only for one given address, and
-- MT_SMTPREPLY only for a given code ("Invalid argument" without): ask for each one that
-- a child could have sent
RCPT_ADDRS = { "<dave@example.net>", "dave@example.net", "<bob@example.net>", "bob@example.net",
               "<carol@example.net>", "carol@example.net", "<mallory@example.net>", "mallory@example.net" }
REPLY_CODES = { "421", "450", "451", "452", "550", "551", "552", "553", "554" }

-- no_edits: nothing but the final reply came back at end of message
function no_edits(conn, what)
  for _, k in ipairs(EDIT_KINDS) do
    if k[2] ~= nil and mt.eom_check(conn, k[2]) then
      error(what .. ": shadowd asked for an edit at end of message (" .. k[1] .. ")", 2)
    end
  end
  for _, a in ipairs(RCPT_ADDRS) do
    if mt.eom_check(conn, MT_RCPTADD, a) then
      error(what .. ": shadowd asked to add recipient " .. a .. " (MT_RCPTADD)", 2)
    end
    if mt.eom_check(conn, MT_RCPTDELETE, a) then
      error(what .. ": shadowd asked to delete recipient " .. a .. " (MT_RCPTDELETE)", 2)
    end
  end
  for _, c in ipairs(REPLY_CODES) do
    if mt.eom_check(conn, MT_SMTPREPLY, c) then
      error(what .. ": shadowd set an SMTP reply " .. c .. " (MT_SMTPREPLY)", 2)
    end
  end
end

-- open: connect to shadowd and negotiate (explicitly, so that mt.test_option works before
--   the first command), offering the protocol bits in "offer" if given.
--   Gotcha: miltertest 1.5's mt.negotiate takes (conn, version, PROTOCOL, ACTIONS), not the
--   (conn, version, actions, steps) of its man page.
function open()
  local conn = mt.connect(sock, 50, 0.1)
  check(conn ~= nil, "mt.connect(" .. tostring(sock) .. ") failed")
  if offer ~= nil and offer ~= "" then
    ok(mt.negotiate(conn, nil, tonumber(offer), nil), "negotiate (protocol offer " .. offer .. ")")
  else
    ok(mt.negotiate(conn, nil, nil, nil), "negotiate")
  end
  return conn
end

OPTION_NAMES = { "NOCONNECT", "NOHELO", "NOMAIL", "NORCPT", "NOBODY", "NOHDRS", "NOEOH", "NOUNKNOWN",
                 "NODATA", "NR_CONN", "NR_HELO", "NR_MAIL", "NR_RCPT", "NR_DATA", "NR_UNKN", "NR_EOH",
                 "NR_BODY", "NR_HDR", "SKIP", "RCPT_REJ", "HDR_LEADSPC" }
NEGOTIATED = nil

-- negotiated: the SMFIP_* options shadowd asked for, by name
function negotiated(conn)
  local set = {}
  for _, n in ipairs(OPTION_NAMES) do
    local bit = _G["SMFIP_" .. n]
    if bit ~= nil and mt.test_option(conn, bit) then set[#set + 1] = n end
  end
  return table.concat(set, " ")
end

-- hello: macros, connection info and HELO; ip "unspec" makes an unknown-family connect
function hello(conn, host, ip, helo)
  ok(mt.macro(conn, SMFIC_CONNECT, "j", "mt.tb.test", "{daemon_name}", "miltertest"), "macro connect")
  if NEGOTIATED == nil then NEGOTIATED = negotiated(conn) end
  step(conn, SMFIP_NOCONNECT, "connect", mt.conninfo, host, ip)
  step(conn, SMFIP_NOHELO, "helo", mt.helo, helo or "client.tb.test")
end

-- message: one transaction; m = { n = number in the case, rcpts = {...}, subject = "...",
--   body = { chunks } or nil, random = bytes of random body or nil, abort_after = "rcpt" or nil }
function message(conn, m)
  local qid = tag .. "." .. m.n
  local key = "msg " .. m.n
  ok(mt.macro(conn, SMFIC_MAIL, "i", qid, "{mail_addr}", "alice@example.com"), "macro mail")
  step(conn, SMFIP_NOMAIL, key .. " mail", mt.mailfrom, "<alice@example.com>", "SIZE=1000")
  for _, r in ipairs(m.rcpts) do
    ok(mt.macro(conn, SMFIC_RCPT, "{rcpt_addr}", (r:gsub("[<>]", ""))), "macro rcpt")
    step(conn, SMFIP_NORCPT, key .. " rcpt " .. r, mt.rcptto, r)
  end
  if m.abort_after == "rcpt" then
    ok(mt.abort(conn), key .. " abort")
    SEEN[#SEEN + 1] = key .. " abort"
    return
  end
  step(conn, SMFIP_NODATA, key .. " data", mt.data)
  local headers = {
    { "From", "Alice <alice@example.com>" },
    { "To", table.concat(m.rcpts, ", ") },
    { "Subject", m.subject or "hello" },
    { "Message-ID", "<" .. qid .. "@e2e.example.com>" },
    { "Received", "from client.tb.test by mt.tb.test;\n\tThu, 3 Dec 2026 21:00:00 +0000" },
  }
  for _, h in ipairs(headers) do
    step(conn, SMFIP_NOHDRS, key .. " header " .. h[1], mt.header, h[1], h[2])
  end
  step(conn, SMFIP_NOEOH, key .. " eoh", mt.eoh)
  if m.random ~= nil then
    step(conn, SMFIP_NOBODY, key .. " body (random " .. m.random .. " bytes)", mt.bodyrandom, m.random)
  else
    for i, chunk in ipairs(m.body or { "Hello,\r\nthis is message " .. qid .. ".\r\n" }) do
      step(conn, SMFIP_NOBODY, key .. " body " .. i, mt.bodystring, chunk)
    end
  end
  ok(mt.eom(conn), key .. " eom")
  passive(conn, key .. " eom")
  no_edits(conn, key .. " eom")
end

-- run: miltertest 1.5 exits 1 without printing a Lua error(): print it ourselves
function run(main)
  local fine, err = pcall(main)
  if not fine then
    io.stderr:write("FAIL " .. tostring(tag) .. ": " .. tostring(err) .. "\n")
    io.stderr:write("replies before: " .. table.concat(SEEN, " ") .. "\n")
    os.exit(1)
  end
  print("lua ok " .. tostring(tag) .. ": " .. #SEEN .. " replies, all continue/accept; no edit at eom")
  print("negotiated: " .. tostring(NEGOTIATED))
  print("replies: " .. table.concat(SEEN, " "))
  if #SKIPPED > 0 then print("skipped (negotiated away by shadowd): " .. table.concat(SKIPPED, " ")) end
end
