-- miltertest-rcpt-only.lua - the only recipient is the one rcptrej refuses
dofile(lib)
function main()
  local conn = open()
  hello(conn, "client.tb.test", "192.0.2.2")
  message(conn, { n = 1, rcpts = { "<mallory@example.net>" }, subject = "for mallory" })
  mt.disconnect(conn)
end
run(main)
