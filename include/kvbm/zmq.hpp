/// @file kvbm/zmq.hpp
/// The ZeroMQ transport (target kvbm::zmq, needs cppzmq), both sides: the worker's
/// `ZmqPublisher` (<kvbm/zmq_publisher.hpp>) and the hub's `ZmqHub`, a socket loop over the
/// transport-neutral HubIngest (<kvbm/zmq_hub.hpp>). A worker includes only
/// <kvbm/zmq_publisher.hpp> and so does not compile the hub's index.
#pragma once

#include <kvbm/zmq_hub.hpp>
#include <kvbm/zmq_publisher.hpp>
