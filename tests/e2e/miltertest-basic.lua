-- miltertest-basic.lua - one connection, one message to two recipients, every stage
--   children: rcptrej refuses <mallory@example.net>, quar quarantines, addh edits
dofile(lib)
function main()
  local conn = open()
  hello(conn, "client.tb.test", "192.0.2.1")
  message(conn, { n = 1, rcpts = { "<bob@example.net>", "<mallory@example.net>" }, subject = "hello" })
  mt.disconnect(conn)
end
run(main)
