-- miltertest-two-messages.lua - three transactions on one connection: a whole message,
--   one aborted after RCPT (as RSET does), and one with a large random body
dofile(lib)
function main()
  local conn = open()
  hello(conn, "client.tb.test", "192.0.2.4")
  message(conn, { n = 1, rcpts = { "<bob@example.net>" }, subject = "first",
                  body = { "part one\r\n", "part two\r\n", "part three\r\n" } })
  message(conn, { n = 2, rcpts = { "<bob@example.net>", "<mallory@example.net>" }, abort_after = "rcpt" })
  message(conn, { n = 3, rcpts = { "<carol@example.net>" }, subject = "third", random = 150000 })
  mt.disconnect(conn)
end
run(main)
