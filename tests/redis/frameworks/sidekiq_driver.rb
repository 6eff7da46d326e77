# Drives Sidekiq through its own API for the tests: REDIS_URL=... ruby sidekiq_driver.rb COMMAND ARGS
#   push QUEUE CLASS N [ARG]      N jobs into QUEUE (with the class's own sidekiq_options)
#   schedule CLASS QUEUE SECONDS N  N jobs due in SECONDS (negative: overdue) in the schedule set
#   truth                         what Sidekiq's API says, as JSON
require "json"
require "sidekiq/api"
require_relative "sidekiq_jobs"

cmd, *args = ARGV
case cmd
when "push"
  queue, klass, n, arg = args
  n.to_i.times { |i| Object.const_get(klass).set(queue: queue).perform_async(arg ? arg.to_f : i) }
when "schedule"
  klass, queue, seconds, n = args
  n.to_i.times { |i| Sidekiq::Client.push("class" => klass, "queue" => queue, "args" => [i], "at" => Time.now.to_f + seconds.to_f) }
when "truth"
  now = Time.now.to_f
  queues = Sidekiq::Queue.all.to_h { |q| [q.name, {"size" => q.size, "latency" => q.latency}] }
  scheduled = Sidekiq::ScheduledSet.new
  retries = Sidekiq::RetrySet.new
  dead = Sidekiq::DeadSet.new
  busy = Hash.new(0)
  Sidekiq::Workers.new.each { |_process, _thread, work| busy[work["queue"]] += 1 }
  puts JSON.generate(
    "now" => now,
    "queues" => queues,
    "scheduled" => {"size" => scheduled.size, "overdue" => scheduled.count { |e| e.at.to_f <= now }},
    "retry" => {"size" => retries.size, "overdue" => retries.count { |e| e.at.to_f <= now },
                # executions so far of each queue's most retried job: retry_count + 1 (job_retry.rb)
                "max_executions" => retries.group_by(&:queue).transform_values { |es| es.map { |e| e["retry_count"].to_i + 1 }.max }},
    "dead" => {"size" => dead.size, "by_queue" => dead.group_by(&:queue).transform_values(&:size),
               "by_class" => dead.group_by { |e| e["error_class"] }.transform_values(&:size)},
    "busy" => Sidekiq::Workers.new.size, "busy_by_queue" => busy,
    "processes" => Sidekiq::ProcessSet.new.size,
  )
else
  abort "unknown command #{cmd.inspect}"
end
