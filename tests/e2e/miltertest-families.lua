-- miltertest-families.lua - three connections: IPv6 (bare, as Postfix sends it), an
--   unknown family (as "sendmail -bs" gives), IPv4; one message each
dofile(lib)
function main()
  local conn = open()
  hello(conn, "v6.client.tb.test", "2001:db8::25")
  message(conn, { n = 1, rcpts = { "<bob@example.net>" }, subject = "over IPv6" })
  mt.disconnect(conn)
  conn = open()
  hello(conn, "localhost", "unspec")
  message(conn, { n = 2, rcpts = { "<bob@example.net>" }, subject = "from stdin" })
  mt.disconnect(conn)
  conn = open()
  hello(conn, "v4.client.tb.test", "192.0.2.3")
  message(conn, { n = 3, rcpts = { "<bob@example.net>" }, subject = "over IPv4" })
  mt.disconnect(conn)
end
run(main)
