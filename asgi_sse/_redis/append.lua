-- Appends one event (or the close marker) to a topic's stream, atomically, with the
-- id of the entry before it, so that a reader can tell when entries were lost.
--
-- KEYS[1]: the topic's stream.
-- ARGV[1]: the stream's length cap (approximate trimming).
-- ARGV[2], ARGV[3]: the event's frame before its id line (field "h") and after it
--   (field "t").
-- ARGV[4]: "1" to append the close marker (field "c") instead of an event.
-- ARGV[5]: milliseconds after which the idle stream expires; "0": never.
-- Returns the new entry's id; an error "CLOSED ..." if the topic was closed.
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
local prev = '0-0'
if newest[1] then
  prev = newest[1][1]
  local fields = newest[1][2]
  for i = 1, #fields, 2 do
    if fields[i] == 'c' then return redis.error_reply('CLOSED topic closed') end
  end
end
local id
if ARGV[4] == '1' then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'p', prev, 'c', '1')
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*',
                  'p', prev, 'h', ARGV[2], 't', ARGV[3])
end
if ARGV[5] ~= '0' then redis.call('PEXPIRE', KEYS[1], ARGV[5]) end
return id
