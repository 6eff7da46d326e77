# Job classes for the Sidekiq tests: loaded by the worker (`sidekiq -r`) and by sidekiq_driver.rb.
require "sidekiq"

# The tests leave due jobs in `schedule` and `retry` on purpose (a stopped poller): this
# poller never moves them into their queues.
class KeepDueJobs
  def enqueue_jobs(*) end
  def terminate() end
end
Sidekiq.options[:scheduled_enq] = KeepDueJobs

class PlainJob
  include Sidekiq::Worker
  def perform(*) end
end

class SlowJob  # busy for as long as the test needs
  include Sidekiq::Worker
  def perform(seconds) sleep(seconds) end
end

class FlakyJob  # fails into the retry set
  include Sidekiq::Worker
  sidekiq_options retry: 5
  def perform(*) raise IOError, "flaky" end
end

class TimeoutJob  # fails straight into the dead set
  include Sidekiq::Worker
  sidekiq_options retry: 0
  def perform(*) raise Timeout::Error, "upstream took too long" end
end

class BadArgsJob
  include Sidekiq::Worker
  sidekiq_options retry: 0
  def perform(*) raise ArgumentError, "bad arguments" end
end
